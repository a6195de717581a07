import { describe, expect, it } from "vitest";
import { parseWorkflow, validateWorkflow } from "../../workflows/dsl/validate-workflow.ts";

const header = `apiVersion: tessera/v1
kind: Workflow
slug: demo
`;

function problemsOf(text: string) {
  const { definition, problems } = validateWorkflow(text);
  expect(definition).toBeUndefined();
  return problems.map((problem) => `${problem.line}:${problem.column} ${problem.message}`);
}

describe("workflow validation", () => {
  it("accepts a valid file and applies defaults", () => {
    const definition = parseWorkflow(`${header}inputs:
  name: { type: string }
steps:
  - id: greet
    uses: transform
    with: { text: "hi \${{ inputs.name }}" }
outputs:
  text: "\${{ steps.greet.output.text }}"
`);
    expect(definition.steps[0]).toMatchObject({ id: "greet", uses: "transform", needs: [] });
    expect(definition.outputs).toEqual({ text: "${{ steps.greet.output.text }}" });
  });

  it("reads JSON as well as YAML, with positions", () => {
    const json = JSON.stringify(
      { apiVersion: "tessera/v1", kind: "Workflow", slug: "j", steps: [{ id: "a", uses: "nope" }] },
      null,
      2,
    );
    expect(problemsOf(json)).toEqual([expect.stringMatching(/^8:15 unknown step type "nope"/)]);
  });

  it("reports a cycle, at the step where it starts", () => {
    const problems = problemsOf(`${header}steps:
  - id: a
    uses: transform
    needs: [c]
  - id: b
    uses: transform
    needs: [a]
  - id: c
    uses: transform
    needs: [b]
`);
    expect(problems).toEqual(["7:12 cycle: a -> c -> b -> a"]);
  });

  it("finds a cycle made by expressions as well as by needs", () => {
    const problems = problemsOf(`${header}steps:
  - id: a
    uses: transform
    with: { x: "\${{ steps.b.output.y }}" }
  - id: b
    uses: transform
    with: { y: "\${{ steps.a.output.x }}" }
`);
    expect(problems).toEqual([expect.stringMatching(/cycle: a -> b -> a|cycle: b -> a -> b/)]);
  });

  it("reports a step that needs itself", () => {
    expect(problemsOf(`${header}steps:
  - id: a
    uses: transform
    needs: [a]
`)).toEqual(['7:13 step "a" needs itself']);
  });

  it("reports a workflow step that runs its own workflow", () => {
    expect(problemsOf(`${header}steps:
  - id: again
    uses: workflow
    with: { slug: demo }
`)).toEqual(['7:19 step "again" runs this workflow itself: it would never end']);
  });

  it("reports an unknown step type with the known ones", () => {
    const [problem] = problemsOf(`${header}steps:
  - id: a
    uses: transfrom
`);
    expect(problem).toMatch(/^6:11 unknown step type "transfrom"; known: .*transform/);
  });

  it("reports an expression into a step that does not exist, a missing input, and a missing output field", () => {
    const problems = problemsOf(`${header}inputs:
  name: { type: string }
steps:
  - id: a
    uses: transform
    with: { text: "\${{ inputs.nmae }}" }
  - id: b
    uses: transform
    with:
      x: "\${{ steps.ghost.output.text }}"
      y: "\${{ steps.a.output.txt }}"
outputs:
  z: "\${{ steps.nowhere.output }}"
`);
    expect(problems).toEqual([
      "9:19 ${{ inputs.nmae }} reads inputs.nmae, which is not a declared input",
      "13:10 ${{ steps.ghost.output.text }} reads steps.ghost, which is not a step",
      "14:10 ${{ steps.a.output.txt }} reads steps.a.output.txt; transform outputs text",
      "16:6 ${{ steps.nowhere.output }} reads steps.nowhere, which is not a step",
    ]);
  });

  it("reports every problem at once: structure, duplicates, needs, `with` against the step's schema", () => {
    const problems = problemsOf(`${header}steps:
  - id: a
    uses: http
    with: { url: "not a url", method: FETCH }
  - id: a
    uses: transform
    needs: [missing]
    colour: blue
  - id: m
    uses: map
    with:
      items: "\${{ [1, 2] }}"
      step: { uses: transform, with: { v: "\${{ item }}", w: "\${{ index }}" } }
  - id: outside
    uses: transform
    with: { v: "\${{ item }}" }
`);
    expect(problems).toEqual([
      expect.stringMatching(/^7:18 url: /),
      expect.stringMatching(/^7:39 method: /),
      '8:9 duplicate step id "a" (first at steps[0])',
      '10:13 needs "missing", which is not a step',
      '11:13 unknown field "colour"',
      "19:16 ${{ item }} reads item, which exists only inside a map's step",
    ]);
  });

  it("checks `with` values written as expressions at run time, not before", () => {
    const { problems } = validateWorkflow(`${header}inputs:
  n: { type: integer }
steps:
  - id: m
    uses: map
    with:
      items: "\${{ [1..3] }}"
      concurrency: "\${{ inputs.n }}"
      step: { uses: transform, with: { v: "\${{ item }}" } }
`);
    expect(problems).toEqual([]);
  });

  it("reports an expression that does not parse", () => {
    const [problem] = problemsOf(`${header}steps:
  - id: a
    uses: transform
    with: { v: "\${{ inputs.( }}" }
`);
    expect(problem).toMatch(/^7:16 expression \$\{\{ inputs.\( \}\} does not parse/);
  });

  it("reports a \${{ without its closing }}, in a step's with, its if and the outputs", () => {
    const problems = problemsOf(`${header}inputs:
  note: { type: string }
steps:
  - id: a
    uses: transform
    if: "\${{ inputs.note != '' }"
    with: { text: "\${{ inputs.note }", ok: "\${{ inputs.note }} and \${{ inputs.note" }
outputs:
  text: "said: \${{ steps.a.output.text }"
`);
    expect(problems).toEqual([
      expect.stringMatching(/^9:10 .*\$\{\{ without a closing \}\}/),
      expect.stringMatching(/^10:20 .*\$\{\{ without a closing \}\}/),
      expect.stringMatching(/^10:68 .*\$\{\{ without a closing \}\}/),
      expect.stringMatching(/^12:16 .*\$\{\{ without a closing \}\}/),
    ]);
  });

  it("refuses a file over the size limit before parsing it", () => {
    const huge = `${header}steps:\n  - id: a\n    uses: transform\n    with: { pad: "${"x".repeat(10 * 1024 * 1024)}" }\n`;
    const problems = problemsOf(huge);
    expect(problems).toEqual([expect.stringMatching(/^1:1 the file is \d+ bytes; the limit is 1048576/)]);
  });

  it("refuses YAML whose aliases expand without bound (billion laughs)", () => {
    const levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
    for (let level = 1; level < 10; level++) {
      const previous = String.fromCharCode(96 + level);
      const name = String.fromCharCode(97 + level);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`);
    }
    const bomb = `${header}${levels.join("\n")}\nsteps:\n  - id: s\n    uses: transform\n    with: { v: *j }\n`;
    const started = Date.now();
    const problems = problemsOf(bomb);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(problems).toEqual([expect.stringMatching(/aliases expand too far/)]);
  });

  it("refuses a map over a literal list longer than the limit", () => {
    const items = JSON.stringify(Array.from({ length: 10_001 }, (_, index) => index));
    const problems = problemsOf(`${header}steps:
  - id: m
    uses: map
    with:
      items: ${items}
      step: { uses: transform, with: { v: "\${{ item }}" } }
`);
    expect(problems).toEqual([expect.stringMatching(/map over 10001 items; the limit is 10000/)]);
  });

  it("throws INVALID_WORKFLOW with the problems in details", () => {
    try {
      parseWorkflow(`${header}steps: []\n`);
      expect.unreachable();
    } catch (error) {
      expect((error as { code: string }).code).toBe("INVALID_WORKFLOW");
      expect((error as { details: { problems: unknown[] } }).details.problems).toHaveLength(1);
    }
  });

  it("reports YAML syntax errors with their position", () => {
    const [problem] = problemsOf(`${header}steps:\n  - id: a\n    uses: [transform\n`);
    expect(problem).toMatch(/^\d+:\d+ /);
  });
});
