import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const PUBLISH = `mutation ($d: String!) { publishWorkflow(definition: $d) { id number slug createdAt } }`;
const RUN = `mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id status } }`;

const workflow = (slug: string, extra = "") => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  count: { type: integer }
  items: { type: array, required: false, default: [] }
  mode: { type: string, enum: [fast, slow], required: false }
steps:
  - id: each
    uses: map
    with:
      items: "\${{ inputs.items }}"
      step: { uses: transform, with: { v: "\${{ item }}" } }
  - id: sum
    uses: transform
    with: { total: "\${{ inputs.count + 1 }}" }
${extra}outputs:
  total: "\${{ steps.sum.output.total }}"
`;

async function storedFor(projectId: string) {
  const [workflows, runs] = await Promise.all([
    t.app.db.workflow.count({ where: { projectId } }),
    t.app.db.run.count({ where: { projectId } }),
  ]);
  return { workflows, runs };
}

describe("publishing", () => {
  it("numbers versions, returns the existing version for identical content, and lists them", async () => {
    const { key } = await t.createProject();
    const first = await t.graphql(PUBLISH, { d: workflow("versions") }, key);
    expect(first.errors).toBeUndefined();
    expect(first.data.publishWorkflow).toMatchObject({ number: 1, slug: "versions" });
    // The same definition, formatted differently, is the same version.
    const reformatted = workflow("versions").replace("count: { type: integer }", "count:\n    type: integer");
    const again = await t.graphql(PUBLISH, { d: reformatted }, key);
    expect(again.data.publishWorkflow.id).toBe(first.data.publishWorkflow.id);
    const changed = await t.graphql(PUBLISH, { d: workflow("versions").replace("+ 1", "+ 2") }, key);
    expect(changed.data.publishWorkflow.number).toBe(2);

    const listed = await t.graphql(`{ workflow(slug: "versions") { slug versions { number createdAt } published { number } } workflows { slug } }`, {}, key);
    expect(listed.errors).toBeUndefined();
    expect(listed.data.workflow.versions.map((v: { number: number }) => v.number)).toEqual([1, 2]);
    expect(listed.data.workflow.published.number).toBe(2);
    expect(listed.data.workflows).toEqual([{ slug: "versions" }]);
  });

  it("keeps workflows and runs inside their project", async () => {
    const a = await t.createProject();
    const b = await t.createProject();
    await t.graphql(PUBLISH, { d: workflow("private") }, a.key);
    const started = await t.graphql(RUN, { slug: "private", input: { count: 1 } }, a.key);
    expect(started.errors).toBeUndefined();
    const runId = started.data.runWorkflow.id;

    expect((await t.graphql(`{ workflow(slug: "private") { slug } }`, {}, b.key)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await t.graphql(RUN, { slug: "private", input: { count: 1 } }, b.key)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    for (const query of [`query ($id: ID!) { run(id: $id) { id } }`, `mutation ($id: ID!) { cancelRun(id: $id) { id } }`]) {
      expect((await t.graphql(query, { id: runId }, b.key)).errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    }
    expect((await t.graphql(`{ runs { id } workflows { slug } }`, {}, b.key)).data).toEqual({ runs: [], workflows: [] });
    expect((await t.graphql(`{ runs { id } }`, {}, a.key)).data.runs).toEqual([{ id: runId }]);
    expect(await storedFor(b.projectId)).toEqual({ workflows: 0, runs: 0 });
  });
});

describe("bad input gets its error and changes nothing", () => {
  const header = "apiVersion: tessera/v1\nkind: Workflow\nslug: bad\n";
  const cases: Record<string, string> = {
    "a cycle": `${header}steps:\n  - id: a\n    uses: transform\n    needs: [b]\n  - id: b\n    uses: transform\n    needs: [a]\n`,
    "a step needing itself": `${header}steps:\n  - id: a\n    uses: transform\n    needs: [a]\n`,
    "an unknown uses": `${header}steps:\n  - id: a\n    uses: teleport\n`,
    "an expression into a missing step": `${header}steps:\n  - id: a\n    uses: transform\n    with: { v: "\${{ steps.ghost.output }}" }\n`,
    "a 10 MB file": `${header}steps:\n  - id: a\n    uses: transform\n    with: { v: "${"x".repeat(10 * 1024 * 1024)}" }\n`,
    "a billion laughs": `${header}a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\nsteps:\n  - id: a\n    uses: transform\n    with: { v: *f }\n`,
  };
  for (const [name, source] of Object.entries(cases)) {
    it(`refuses to publish ${name} with INVALID_WORKFLOW and its problems`, async () => {
      const { key, projectId } = await t.createProject();
      const response = await t.graphql(PUBLISH, { d: source }, key);
      expect(response.data).toBeFalsy();
      const error = response.errors?.[0];
      expect(error?.extensions?.code).toBe("INVALID_WORKFLOW");
      const problems = (error?.extensions?.details as { problems: Array<{ line: number; column: number; message: string }> }).problems;
      expect(problems.length).toBeGreaterThan(0);
      expect(problems[0]).toMatchObject({ line: expect.any(Number), column: expect.any(Number), message: expect.any(String) });
      expect(await storedFor(projectId)).toEqual({ workflows: 0, runs: 0 });
    });
  }

  it("refuses a run input that fails the input types, listing every problem, and stores no run", async () => {
    const { key, projectId } = await t.createProject();
    await t.graphql(PUBLISH, { d: workflow("typed") }, key);
    const response = await t.graphql(RUN, { slug: "typed", input: { count: "three", mode: "medium", extra: 1 } }, key);
    expect(response.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const problems = (response.errors?.[0]?.extensions?.details as { problems: Array<{ path: string }> }).problems;
    expect(problems.map((problem) => problem.path).sort()).toEqual(["", "count", "mode"]);
    expect(await storedFor(projectId)).toEqual({ workflows: 1, runs: 0 });
    const missing = await t.graphql(RUN, { slug: "typed", input: {} }, key);
    expect(missing.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(await storedFor(projectId)).toEqual({ workflows: 1, runs: 0 });
  });

  it("refuses a map over 1e6 items (above the configured limit) and stores no run", async () => {
    const { key, projectId } = await t.createProject();
    await t.graphql(PUBLISH, { d: workflow("huge-map") }, key);
    const items = Array.from({ length: 1_000_000 }, () => 0);
    const response = await t.graphql(RUN, { slug: "huge-map", input: { count: 1, items } }, key);
    expect(response.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(response.errors?.[0]?.message).toMatch(/map over 1000000 items; the limit is 10000/);
    expect(await storedFor(projectId)).toEqual({ workflows: 1, runs: 0 });
    expect(await t.app.db.stepRun.count({ where: { run: { projectId } } })).toBe(0);
  });

  it("refuses a map whose items come from a step, at run time, before any item runs", async () => {
    const { key } = await t.createProject();
    const source = `apiVersion: tessera/v1
kind: Workflow
slug: late-huge-map
steps:
  - id: make
    uses: transform
    with: { list: "\${{ [1..20000] }}" }
  - id: each
    uses: map
    with:
      items: "\${{ steps.make.output.list }}"
      step: { uses: transform, with: { v: "\${{ item }}" } }
`;
    await t.graphql(PUBLISH, { d: source }, key);
    const started = await t.graphql(RUN, { slug: "late-huge-map" }, key);
    const runId = started.data.runWorkflow.id;
    const { eventually } = await import("../support/test-app.ts");
    const run = await eventually(async () => {
      const row = await t.app.db.run.findUnique({ where: { id: runId } });
      return row && ["FAILED", "SUCCEEDED"].includes(row.status) ? row : null;
    });
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "BAD_USER_INPUT", message: expect.stringMatching(/map over 20000 items; the limit is 10000/) });
    expect(await t.app.db.stepRun.count({ where: { runId, parentId: { not: null } } })).toBe(0);
  });
});

describe("the JSON Schema endpoint", () => {
  it("serves the workflow JSON Schema without a key", async () => {
    const response = await fetch(t.url.replace("/graphql", "/schemas/workflow.json"));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("application/schema+json");
    const schema = await response.json();
    expect(schema.title).toBe("Tessera workflow");
    expect(schema.properties.apiVersion.const).toBe("tessera/v1");
  });
});
