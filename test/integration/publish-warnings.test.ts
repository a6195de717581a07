import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * A workflow whose steps need a model alias nobody configured is published
 * (the deployment may be configured later) but says so at once; a run of it
 * still fails, with a typed error that says how to configure the alias.
 * Nothing here configures llm.* or caption.*: only the built-in speech.default exists.
 */
let t: TestApp;
let key: string;
beforeAll(async () => {
  for (const name of Object.keys(process.env)) if (/^(MODEL_ALIAS_|OPENAI_|PROVIDER_)|^PROVIDERS_FILE$/.test(name)) delete process.env[name];
  t = await startTestApp({ worker: true });
  ({ key } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

const PUBLISH = /* GraphQL */ `
  mutation ($d: String!) { publishWorkflow(definition: $d) { id number warnings } }
`;
const slug = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

describe("publishWorkflow warns about models that are not configured", () => {
  it("names each step whose model alias is missing, and how to configure it", async () => {
    const name = slug("needs-models");
    const answer = await t.graphql(
      PUBLISH,
      {
        d: `apiVersion: tessera/v1
kind: Workflow
slug: ${name}
inputs:
  photo: { type: asset, modality: IMAGE }
steps:
  - id: answer
    uses: generate.text
    with: { prompt: "hello" }
  - id: describe
    uses: generate.caption
    with: { asset: "\${{ inputs.photo }}", model: llm.my-vision }
  - id: speak
    uses: generate.speech
    with: { text: "hello" }
  - id: shape
    uses: transform
    with: { value: "\${{ steps.answer.output.text }}" }
`,
      },
      key,
    );
    expect(answer.errors).toBeUndefined();
    const warnings: string[] = answer.data.publishWorkflow.warnings;
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/step "answer" \(generate\.text\).*"llm\.default".*MODEL_ALIAS_LLM_DEFAULT=<provider>:<model>/);
    expect(warnings[1]).toMatch(/step "describe" \(generate\.caption\).*"llm\.my-vision".*MODEL_ALIAS_LLM_MY_VISION/);
  });

  it("has no warnings when every model is configured, and the old selection still works", async () => {
    const source = `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug("speaks")}\nsteps:\n  - id: speak\n    uses: generate.speech\n    with: { text: "hello" }\n`;
    const answer = await t.graphql(PUBLISH, { d: source }, key);
    expect(answer.data.publishWorkflow.warnings).toEqual([]);
    const old = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { id number slug } }`, { d: source }, key);
    expect(old.errors).toBeUndefined();
    expect(old.data.publishWorkflow.number).toBe(1);
  });

  it("a run of it fails with MODEL_NOT_FOUND that says how to configure the alias", async () => {
    const name = slug("runs-without-model");
    await t.graphql(PUBLISH, { d: `apiVersion: tessera/v1\nkind: Workflow\nslug: ${name}\nsteps:\n  - id: answer\n    uses: generate.text\n    with: { prompt: "hello" }\n` }, key);
    const started = await t.graphql(`mutation ($slug: String!) { runWorkflow(slug: $slug) { id } }`, { slug: name }, key);
    const runId = started.data.runWorkflow.id;
    const run = await eventually(async () => {
      const answer = await t.graphql(`query ($id: ID!) { run(id: $id) { status steps { error { code message } } } }`, { id: runId }, key);
      return answer.data.run.status === "FAILED" ? answer.data.run : null;
    }, 30_000);
    expect(run.steps[0].error.code).toBe("MODEL_NOT_FOUND");
    expect(run.steps[0].error.message).toContain("MODEL_ALIAS_LLM_DEFAULT=<provider>:<model>");
  });
});
