import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

// A run's start (issue #20): one statement stores the run and its rows within the quota, or nothing. Seen under load
// before: runWorkflow answered INTERNAL "Foreign key constraint violated on StepRun_runId_fkey" when the quota's
// interactive transaction expired between the model API's Run and StepRun inserts (its rollback landed between them).
let t: TestApp;
let admin: pg.Client;
beforeAll(async () => {
  t = await startTestApp({ worker: { reconcile: false, modelCalls: false } });
  admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await t?.close();
});

const chain = (slug: string) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: first
    uses: transform
    with: { value: "one" }
  - id: second
    uses: transform
    with: { value: "\${{ steps.first.output.value }}-two" }
outputs:
  value: "\${{ steps.second.output.value }}"
`;

async function publish(key: string, slug: string) {
  const published = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`, { d: chain(slug) }, key);
  expect(published.errors).toBeUndefined();
}

const runWorkflow = (key: string, slug: string) => t.graphql(`mutation ($slug: String!) { runWorkflow(slug: $slug) { id status } }`, { slug }, key);

/** The project's start lock, held by another session (as a slow start of the same project would hold it). */
async function holdStartLock(projectId: string) {
  await admin.query(`SELECT pg_advisory_lock(hashtextextended($1, 0))`, [`runs:${projectId}`]);
  return () => admin.query(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [`runs:${projectId}`]);
}

async function rowsOf(projectId: string) {
  const runs = await t.app.db.run.count({ where: { projectId } });
  const steps = await t.app.db.stepRun.count({ where: { run: { projectId } } });
  return { runs, steps };
}

it("stores the run and its rows in one commit, and the run goes on from there", async () => {
  const { key, projectId } = await t.createProject();
  await publish(key, "start-one");
  const started = await runWorkflow(key, "start-one");
  expect(started.errors).toBeUndefined();
  expect(started.data.runWorkflow.status).toBe("QUEUED");
  const id = started.data.runWorkflow.id as string;
  const run = await eventually(async () => {
    const row = await t.app.db.run.findUniqueOrThrow({ where: { id }, include: { steps: { orderBy: { key: "asc" } } } });
    return row.status === "SUCCEEDED" ? row : null;
  });
  expect(run).toMatchObject({ projectId, output: { value: "one-two" } });
  expect(run.createdAt).toBeInstanceOf(Date);
  expect(run.steps.map((step) => [step.key, step.status, step.attempts, step.output])).toEqual([
    ["first", "SUCCEEDED", 1, { value: "one" }],
    ["second", "SUCCEEDED", 1, { value: "one-two" }],
  ]);
});

it("a start cut off while it waits (its connection ended) answers SERVICE_UNAVAILABLE and stores nothing", async () => {
  const { key, projectId } = await t.createProject();
  await publish(key, "start-cut");
  const release = await holdStartLock(projectId);
  try {
    const answer = runWorkflow(key, "start-cut");
    // The start is inside its one statement, waiting for the project's lock: end that session, as a PostgreSQL restart would.
    const pid = await eventually(async () => {
      const { rows } = await admin.query(`SELECT pid FROM pg_stat_activity WHERE query LIKE '%tessera_start_run%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`);
      return rows[0]?.pid as number | undefined;
    }, 10_000);
    await admin.query(`SELECT pg_terminate_backend($1)`, [pid]);
    const answered = await answer;
    expect(answered.errors?.[0]?.extensions?.code).toBe("SERVICE_UNAVAILABLE");
    expect(await rowsOf(projectId)).toEqual({ runs: 0, steps: 0 });
  } finally {
    await release();
  }
  const again = await runWorkflow(key, "start-cut");
  expect(again.errors).toBeUndefined();
  expect(await rowsOf(projectId)).toEqual({ runs: 1, steps: 2 });
}, 30_000);

it("a start that waits past its lock timeout for the project's other starts answers SERVICE_UNAVAILABLE and stores nothing", async () => {
  const { key, projectId } = await t.createProject();
  await publish(key, "start-timeout");
  const release = await holdStartLock(projectId);
  try {
    const answered = await runWorkflow(key, "start-timeout");
    expect(answered.errors?.[0]?.extensions?.code).toBe("SERVICE_UNAVAILABLE");
    expect(answered.errors?.[0]?.message).toMatch(/retry/);
    expect(await rowsOf(projectId)).toEqual({ runs: 0, steps: 0 });
  } finally {
    await release();
  }
}, 30_000);
