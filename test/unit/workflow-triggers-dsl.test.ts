import { describe, expect, it } from "vitest";
import { validateWorkflow } from "../../workflows/dsl/validate-workflow.ts";

const file = (on: string) => `apiVersion: tessera/v1
kind: Workflow
slug: triggered
inputs:
  text: { type: string, required: false }
  image: { type: asset, modality: IMAGE, required: false }
steps:
  - id: echo
    uses: transform
    with: { text: "\${{ inputs.text }}" }
${on}`;

const messages = (on: string) => validateWorkflow(file(on)).problems.map((problem) => `${problem.path}: ${problem.message}`);

describe("on: in a workflow file", () => {
  it("accepts schedules with time zones, a webhook with a body mapping, and asset triggers", () => {
    const result = validateWorkflow(
      file(`on:
  schedule:
    - cron: "*/2 * * * * *"
      timezone: Europe/Paris
      input: { text: tick }
    - cron: "0 9 * * 1-5"
  webhook:
    input: { text: "\${{ body.message }}" }
  asset:
    - modality: IMAGE
      tags: [invoice]
    - input: { text: "\${{ asset.id }}" }
`),
    );
    expect(result.problems).toEqual([]);
    expect(result.definition?.on?.schedule?.[0]).toEqual({ cron: "*/2 * * * * *", timezone: "Europe/Paris", input: { text: "tick" } });
    expect(result.definition?.on?.asset?.[0]).toEqual({ modality: "IMAGE", tags: ["invoice"] });
  });

  it("reports a bad cron, an unknown time zone, undeclared inputs and expressions reading what a trigger does not give, with line:col", () => {
    const { problems } = validateWorkflow(
      file(`on:
  schedule:
    - cron: "61 * * * *"
      timezone: Mars/Olympus
      input: { nope: 1, text: "\${{ inputs.text }}" }
  webhook:
    input: { text: "\${{ steps.echo.output.text }}" }
  asset:
    - input: { image: "\${{ body.id }}" }
  unknown: {}
`),
    );
    const text = problems.map((problem) => `${problem.line}:${problem.column} ${problem.path}: ${problem.message}`).join("\n");
    expect(text).toContain("on.schedule[0].cron: cron: not a cron pattern");
    expect(text).toContain("on.schedule[0].timezone: timezone: unknown time zone");
    expect(text).toContain('on.schedule[0].input.nope: "nope" is not a declared input');
    expect(text).toContain("a schedule's input is fixed");
    expect(text).toContain('on.webhook.input.text: ${{ steps.echo.output.text }} reads "steps"');
    expect(text).toContain('on.asset[0].input.image: ${{ body.id }} reads "body"');
    expect(text).toContain('on.unknown: unknown field "unknown"');
    expect(problems.every((problem) => problem.line > 0)).toBe(true);
  });

  it("an asset trigger without a mapping needs exactly one asset input", () => {
    expect(messages(`on:\n  asset:\n    - tags: [x]\n`)).toEqual([]);
    const noAsset = validateWorkflow(file(`on:\n  asset:\n    - tags: [x]\n`).replace("  image: { type: asset, modality: IMAGE, required: false }\n", ""));
    expect(noAsset.problems.map((problem) => problem.message).join()).toContain("exactly one input of type asset");
  });
});
