import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uploadFile } from "../support/graphql-upload.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Honest errors (issue #19): a page too large says so (not "Syntax Error"), an idempotency key reused for
 * other content is IDEMPOTENCY_CONFLICT with nothing stored, and resumeRun answers with the run's state after
 * the resume. Real gateway, worker, database and Redis. (Armor limits and field suggestions: hostile-graphql.test.ts.)
 */
let t: TestApp;
let key: string;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp({ worker: { concurrency: 2 } });
  ({ key, projectId } = await t.createProject());
}, 120_000);
afterAll(async () => {
  await t?.close();
});

function expectCostRefusal(answer: { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }) {
  expect(answer.data).toBeFalsy();
  const error = answer.errors![0]!;
  expect(error.extensions?.code).toBe("QUERY_TOO_COMPLEX");
  const limit = error.extensions?.limit as { kind: string; max: number; actual: number; over: number };
  expect(limit).toMatchObject({ kind: "cost", max: 5000, variable: "GRAPHQL_MAX_COST" });
  expect(limit.over).toBe(limit.actual - 5000);
  expect(error.message).toBe(
    `The query is too complex: its cost (every field selected, weighted by how deep it sits) is ${limit.actual}, ${limit.over} over the limit of 5000 (GRAPHQL_MAX_COST); select fewer fields or smaller pages, or ask in several requests.`,
  );
}

describe("a page too large", () => {
  it("assets(first: 400) says which limit it passed and by how much, not a syntax error", async () => {
    expectCostRefusal(await t.graphql(`{ assets(first: 400) { edges { node { id } } } }`, {}, key));
    // Within the cost limit, a page over 100 is refused by the connection, saying so.
    const answer = await t.graphql(`{ assets(first: 101) { edges { node { id } } } }`, {}, key);
    expect(answer.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(answer.errors?.[0]?.message).toMatch(/`first` must be 0 to 100 \(got 101\)/);
  });

  it("says the same, and hides suggestions, in a process run by tsx as `npm start` runs the gateway", async () => {
    const root = path.resolve(import.meta.dirname, "../..");
    const { stdout, stderr } = await promisify(execFile)(path.join(root, "node_modules/.bin/tsx"), ["test/support/armor-under-tsx.ts"], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: "silent" },
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const answers = stdout.split("\n").filter((line) => line.startsWith('{"'));
    expect(answers, stderr).toHaveLength(2);
    const [cost, typo] = answers.map((line) => JSON.parse(line));
    expectCostRefusal(cost);
    expect(typo.errors[0].extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(typo.errors[0].message).not.toMatch(/Did you mean/);
  }, 150_000);
});

describe("an idempotency key reused for other content", () => {
  const INGEST = `mutation ($text: String!, $key: String) { ingest(input: { text: $text, idempotencyKey: $key }) { asset { id sha256 } job { id } } }`;

  it("is IDEMPOTENCY_CONFLICT for text, naming the first asset, and stores nothing; the same content gets the first answer", async () => {
    const idem = `key-${randomUUID()}`;
    const first = await t.graphql(INGEST, { text: `first words ${idem}`, key: idem }, key);
    expect(first.errors).toBeUndefined();
    const assetsBefore = await t.app.db.asset.count({ where: { projectId } });
    const jobsBefore = await t.app.db.job.count({ where: { projectId } });

    const other = await t.graphql(INGEST, { text: `other words ${idem}`, key: idem }, key);
    expect(other.data).toBeFalsy();
    expect(other.errors?.[0]?.extensions?.code).toBe("IDEMPOTENCY_CONFLICT");
    expect(other.errors?.[0]?.message).toContain(`idempotency key "${idem}" was already used for other content (asset ${first.data.ingest.asset.id})`);
    expect(other.errors?.[0]?.extensions?.details).toEqual({ assetId: first.data.ingest.asset.id });
    expect(await t.app.db.asset.count({ where: { projectId } })).toBe(assetsBefore);
    expect(await t.app.db.job.count({ where: { projectId } })).toBe(jobsBefore);

    const retry = await t.graphql(INGEST, { text: `first words ${idem}`, key: idem }, key);
    expect(retry.errors).toBeUndefined();
    expect(retry.data.ingest).toEqual(first.data.ingest);
  });

  it("is IDEMPOTENCY_CONFLICT for an upload of other bytes too", async () => {
    const idem = `key-${randomUUID()}`;
    const upload = (text: string) =>
      uploadFile(t.url, key, { bytes: Buffer.from(text), filename: "note.txt", mimeType: "text/plain" }, { variables: { key: idem } });
    const first = await upload(`uploaded ${idem}`);
    expect(first.errors).toBeUndefined();
    const again = await upload(`uploaded ${idem}`);
    expect(again.data.ingest.asset.id).toBe(first.data.ingest.asset.id);
    const other = await upload(`something else ${idem}`);
    expect(other.errors?.[0]?.extensions?.code).toBe("IDEMPOTENCY_CONFLICT");
  });
});

describe("resumeRun", () => {
  const RESUME = `mutation ($id: ID!, $step: String!) { resumeRun(id: $id, stepId: $step, input: {}) { id status steps { stepId status } } }`;

  it("answers with the run's state after the resume: still WAITING while another step waits, then going on", async () => {
    const slug = `two-waits-${randomUUID().slice(0, 8)}`;
    const published = await t.graphql(
      `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`,
      {
        d: `
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: first
    uses: wait
    with: { prompt: "first?" }
  - id: second
    uses: wait
    with: { prompt: "second?" }
  - id: after
    uses: transform
    needs: [first, second]
    with: { done: true }
outputs:
  done: "\${{ steps.after.output.done }}"
`,
      },
      key,
    );
    expect(published.errors).toBeUndefined();
    const started = await t.graphql(`mutation ($slug: String!) { runWorkflow(slug: $slug) { id } }`, { slug }, key);
    const runId = started.data.runWorkflow.id as string;
    await eventually(async () => {
      const answer = await t.graphql(`query ($id: ID!) { run(id: $id) { status steps { status } } }`, { id: runId }, key);
      const run = answer.data?.run;
      return run?.status === "WAITING" && run.steps.filter((step: { status: string }) => step.status === "WAITING").length === 2;
    }, 60_000);

    const one = await t.graphql(RESUME, { id: runId, step: "first" }, key);
    expect(one.errors).toBeUndefined();
    expect(one.data.resumeRun.status).toBe("WAITING");
    expect(one.data.resumeRun.steps.find((step: { stepId: string }) => step.stepId === "first").status).toBe("SUCCEEDED");

    const two = await t.graphql(RESUME, { id: runId, step: "second" }, key);
    expect(two.errors).toBeUndefined();
    // The run goes on; by the time the answer is read a fast worker may already have finished it.
    expect(["RUNNING", "SUCCEEDED"]).toContain(two.data.resumeRun.status);
    const done = await eventually(async () => {
      const answer = await t.graphql(`query ($id: ID!) { run(id: $id) { status output } }`, { id: runId }, key);
      return answer.data?.run?.status === "SUCCEEDED" ? answer.data.run : null;
    }, 60_000);
    expect(done.output).toEqual({ done: true });
  }, 150_000);
});
