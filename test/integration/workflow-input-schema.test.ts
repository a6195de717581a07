import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Typed workflow inputs (issue #19): WorkflowVersion.inputSchema is the JSON Schema of runWorkflow's input, and a
 * run input that does not fit is refused field by field. Real gateway and database; no worker is needed.
 */
let t: TestApp;
let key: string;
let projectId: string;
const slug = `typed-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  t = await startTestApp();
  ({ key, projectId } = await t.createProject());
  const published = await t.graphql(
    `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`,
    {
      d: `
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  image: { type: asset, modality: IMAGE, description: "The picture to describe" }
  count: { type: integer, default: 3 }
  mode: { type: string, enum: [short, long] }
  note: { type: string, required: false }
steps:
  - id: echo
    uses: transform
    with: { mode: "\${{ inputs.mode }}" }
outputs:
  mode: "\${{ steps.echo.output.mode }}"
`,
    },
    key,
  );
  expect(published.errors).toBeUndefined();
});
afterAll(async () => {
  await t?.close();
});

describe("Workflow inputs", () => {
  it("are published as a JSON Schema of the run input", async () => {
    const answer = await t.graphql(`query ($slug: String!) { workflow(slug: $slug) { published { inputSchema } } }`, { slug }, key);
    expect(answer.errors).toBeUndefined();
    const schema = answer.data.workflow.published.inputSchema;
    expect(schema).toMatchObject({
      type: "object",
      additionalProperties: false,
      properties: {
        image: { type: "string", format: "uuid", description: "The picture to describe", "x-tessera-type": "asset", "x-tessera-modality": "IMAGE" },
        count: { type: "integer", default: 3 },
        mode: { type: "string", enum: ["short", "long"] },
        note: { type: "string" },
      },
    });
    expect([...schema.required].sort()).toEqual(["image", "mode"]);
  });

  it("refuse a run input that does not fit with one problem per field path, storing nothing", async () => {
    const runsBefore = await t.app.db.run.count({ where: { projectId } });
    const answer = await t.graphql(
      `mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`,
      { slug, input: { image: "not-an-id", mode: "medium", count: 1.5, extra: true } },
      key,
    );
    expect(answer.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const problems = (answer.errors?.[0]?.extensions?.details as { problems: Array<{ path: string; message: string }> }).problems;
    const paths = problems.map((problem) => problem.path);
    expect(paths).toEqual(expect.arrayContaining(["image", "mode", "count"]));
    expect(problems.find((problem) => problem.path === "image")!.message).toMatch(/asset id/);
    expect(problems.some((problem) => /extra/.test(problem.message))).toBe(true);
    expect(await t.app.db.run.count({ where: { projectId } })).toBe(runsBefore);
  });
});
