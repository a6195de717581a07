import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Connections (issue #19): runs, jobs, workflows, versions and a run's steps page with cursors both ways and
 * count with `totalCount`; `cancelJob` cancels a queued job and refuses a finished one. Real database and Redis.
 */
let t: TestApp;
let a: { key: string; projectId: string };
let b: { key: string; projectId: string };
const RUNS = 250;
let alphaId: string;
let expectedOrder: string[];
const base = Date.UTC(2026, 0, 1);

async function makeWorkflow(projectId: string, slug: string, versions = 1) {
  const workflow = await t.app.db.workflow.create({ data: { projectId, slug } });
  const made = [];
  for (let number = 1; number <= versions; number++) {
    made.push(
      await t.app.db.workflowVersion.create({
        data: { workflowId: workflow.id, number, definition: { slug }, source: `slug: ${slug}`, contentHash: `${slug}-${number}` },
      }),
    );
  }
  return { workflow, versions: made };
}

beforeAll(async () => {
  t = await startTestApp();
  a = await t.createProject();
  b = await t.createProject();
  const alpha = await makeWorkflow(a.projectId, "alpha", 3);
  const beta = await makeWorkflow(a.projectId, "beta");
  await makeWorkflow(a.projectId, "gamma");
  alphaId = alpha.workflow.id;
  // Every fifth pair of runs shares a creation time, so ties are ordered by id.
  const rows = Array.from({ length: RUNS }, (_, index) => ({
    id: randomUUID(),
    projectId: a.projectId,
    workflowVersionId: index % 2 === 0 ? alpha.versions[0]!.id : beta.versions[0]!.id,
    status: (index % 10 === 0 ? "FAILED" : "SUCCEEDED") as "FAILED" | "SUCCEEDED",
    createdAt: new Date(base + Math.floor(index / (index % 5 === 0 ? 2 : 1)) * 60_000 + (index % 5 === 0 ? 0 : 30_000)),
  }));
  await t.app.db.run.createMany({ data: rows });
  expectedOrder = (
    await t.app.db.run.findMany({ where: { projectId: a.projectId }, orderBy: [{ createdAt: "desc" }, { id: "desc" }], select: { id: true } })
  ).map((run) => run.id);
  await t.app.db.stepRun.createMany({
    data: Array.from({ length: 30 }, (_, index) => ({
      runId: rows[0]!.id,
      stepId: "each",
      key: `each[${String(index).padStart(2, "0")}]`,
      status: (index < 5 ? "FAILED" : "SUCCEEDED") as "FAILED" | "SUCCEEDED",
      createdAt: new Date(base + index),
    })),
  });
}, 120_000);
afterAll(async () => {
  await t?.close();
});

const RUNS_PAGE = `query ($first: Int, $after: String, $last: Int, $before: String, $status: RunStatus, $workflow: String, $createdAfter: DateTime, $createdBefore: DateTime) {
  runsConnection(first: $first, after: $after, last: $last, before: $before, status: $status, workflow: $workflow, createdAfter: $createdAfter, createdBefore: $createdBefore) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id status createdAt } }
  }
}`;

async function runsPage(variables: Record<string, unknown>, key = a.key) {
  const answer = await t.graphql(RUNS_PAGE, variables, key);
  expect(answer.errors).toBeUndefined();
  return answer.data.runsConnection as {
    totalCount: number;
    pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
    edges: Array<{ cursor: string; node: { id: string; status: string; createdAt: string } }>;
  };
}

describe("runsConnection", () => {
  it("goes forward over 250 runs, newest first, then back, with totalCount", async () => {
    const forward: string[] = [];
    let after: string | null = null;
    let pages = 0;
    while (true) {
      const page = await runsPage({ first: 100, after });
      expect(page.totalCount).toBe(RUNS);
      forward.push(...page.edges.map((edge) => edge.node.id));
      pages++;
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(forward).toEqual(expectedOrder);

    const backward: string[] = [];
    let before: string | null = null;
    while (true) {
      const page = await runsPage({ last: 100, before });
      backward.unshift(...page.edges.map((edge) => edge.node.id));
      if (!page.pageInfo.hasPreviousPage) break;
      before = page.pageInfo.startCursor;
    }
    expect(backward).toEqual(expectedOrder);

    // From the middle: 40 after the 100th, then the 40 before the 141st are the same window shifted.
    const middle = await runsPage({ first: 40, after: (await runsPage({ first: 100 })).pageInfo.endCursor });
    expect(middle.edges.map((edge) => edge.node.id)).toEqual(expectedOrder.slice(100, 140));
    const back = await runsPage({ last: 40, before: middle.edges.at(-1)!.cursor });
    expect(back.edges.map((edge) => edge.node.id)).toEqual(expectedOrder.slice(99, 139));
  });

  it("filters by status, workflow and time, and counts what the filters match", async () => {
    expect((await runsPage({ first: 1, status: "FAILED" })).totalCount).toBe(RUNS / 10);
    expect((await runsPage({ first: 1, workflow: "beta" })).totalCount).toBe(RUNS / 2);
    expect((await runsPage({ first: 1, workflow: "gamma" })).totalCount).toBe(0);
    const createdAfter = new Date(base + 100 * 60_000).toISOString();
    const createdBefore = new Date(base + 150 * 60_000).toISOString();
    const window = await runsPage({ first: 100, createdAfter, createdBefore });
    const inWindow = (
      await t.app.db.run.count({ where: { projectId: a.projectId, createdAt: { gte: new Date(createdAfter), lt: new Date(createdBefore) } } })
    );
    expect(inWindow).toBeGreaterThan(0);
    expect(window.totalCount).toBe(inWindow);
    expect(window.edges).toHaveLength(inWindow);
    for (const edge of window.edges) {
      expect(edge.node.createdAt >= createdAfter && edge.node.createdAt < createdBefore).toBe(true);
    }
  });

  it("shows another project nothing, and keeps the old `runs` list working", async () => {
    expect((await runsPage({ first: 10 }, b.key)).totalCount).toBe(0);
    const old = await t.graphql(`{ runs(limit: 5) { id } }`, {}, a.key);
    expect(old.errors).toBeUndefined();
    expect(old.data.runs.map((run: { id: string }) => run.id)).toEqual(expectedOrder.slice(0, 5));
  });

  it("refuses a page larger than 100 with a clear error", async () => {
    const answer = await t.graphql(`{ runsConnection(first: 500) { totalCount } }`, {}, a.key);
    expect(answer.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(answer.errors?.[0]?.message).toMatch(/`first` must be 0 to 100 \(got 500\)/);
  });
});

describe("workflows, versions and steps as connections", () => {
  it("pages workflows by slug and a workflow's versions newest first", async () => {
    const first = await t.graphql(`{ workflowsConnection(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { slug } } } }`, {}, a.key);
    expect(first.errors).toBeUndefined();
    expect(first.data.workflowsConnection.totalCount).toBe(3);
    expect(first.data.workflowsConnection.edges.map((edge: any) => edge.node.slug)).toEqual(["alpha", "beta"]);
    const rest = await t.graphql(
      `query ($after: String) { workflowsConnection(first: 2, after: $after) { pageInfo { hasNextPage } edges { node { slug } } } }`,
      { after: first.data.workflowsConnection.pageInfo.endCursor },
      a.key,
    );
    expect(rest.data.workflowsConnection.edges.map((edge: any) => edge.node.slug)).toEqual(["gamma"]);
    expect(rest.data.workflowsConnection.pageInfo.hasNextPage).toBe(false);

    const versions = await t.graphql(`{ workflow(slug: "alpha") { versionsConnection(first: 2) { totalCount edges { node { number } } } } }`, {}, a.key);
    expect(versions.errors).toBeUndefined();
    expect(versions.data.workflow.versionsConnection).toEqual({ totalCount: 3, edges: [{ node: { number: 3 } }, { node: { number: 2 } }] });
    expect((await t.graphql(`{ workflowsConnection { totalCount } }`, {}, b.key)).data.workflowsConnection.totalCount).toBe(0);
    expect(alphaId).toBeTruthy();
  });

  it("pages a run's steps in creation order, filtered by status", async () => {
    const runId = expectedOrder.at(-1)!;
    const all = await t.graphql(
      `query ($id: ID!) { run(id: $id) { steps { id } stepsConnection(first: 10) { totalCount pageInfo { hasNextPage endCursor } edges { node { id status } } } } }`,
      { id: runId },
      a.key,
    );
    expect(all.errors).toBeUndefined();
    const connection = all.data.run.stepsConnection;
    expect(connection.totalCount).toBe(30);
    expect(connection.edges.map((edge: any) => edge.node.id)).toEqual(all.data.run.steps.slice(0, 10).map((step: any) => step.id));
    const next = await t.graphql(
      `query ($id: ID!, $after: String) { run(id: $id) { stepsConnection(first: 25, after: $after) { pageInfo { hasNextPage } edges { node { id } } } } }`,
      { id: runId, after: connection.pageInfo.endCursor },
      a.key,
    );
    expect(next.data.run.stepsConnection.edges.map((edge: any) => edge.node.id)).toEqual(all.data.run.steps.slice(10).map((step: any) => step.id));
    expect(next.data.run.stepsConnection.pageInfo.hasNextPage).toBe(false);
    const failed = await t.graphql(`query ($id: ID!) { run(id: $id) { stepsConnection(status: FAILED) { totalCount } } }`, { id: runId }, a.key);
    expect(failed.data.run.stepsConnection.totalCount).toBe(5);
  });
});

describe("jobs and cancelJob", () => {
  const INGEST = `mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id status } } }`;
  const CANCEL = `mutation ($id: ID!) { cancelJob(id: $id) { id status error { code message } finishedAt } }`;

  it("lists jobs newest first with kind and status filters", async () => {
    const project = await t.createProject();
    const ids: string[] = [];
    for (let index = 0; index < 3; index++) {
      const made = await t.graphql(INGEST, { text: `job listing ${index} ${randomUUID()}` }, project.key);
      expect(made.errors).toBeUndefined();
      ids.push(made.data.ingest.job.id);
    }
    await t.app.db.job.create({ data: { projectId: project.projectId, kind: "GENERATE", status: "SUCCEEDED" } });
    const listed = await t.graphql(`{ jobs(first: 2, kind: INGEST) { totalCount pageInfo { hasNextPage } edges { node { id kind status } } } }`, {}, project.key);
    expect(listed.errors).toBeUndefined();
    expect(listed.data.jobs.totalCount).toBe(3);
    expect(listed.data.jobs.pageInfo.hasNextPage).toBe(true);
    expect(listed.data.jobs.edges.map((edge: any) => edge.node.id)).toEqual([ids[2], ids[1]]);
    expect(listed.data.jobs.edges[0].node.kind).toBe("INGEST");
    const done = await t.graphql(`{ jobs(status: SUCCEEDED) { totalCount edges { node { kind } } } }`, {}, project.key);
    expect(done.data.jobs).toEqual({ totalCount: 1, edges: [{ node: { kind: "GENERATE" } }] });
    expect((await t.graphql(`{ jobs { totalCount } }`, {}, b.key)).data.jobs.totalCount).toBe(0);
  });

  it("cancels a queued job (gone from the queue, its asset FAILED), then refuses to cancel it again", async () => {
    const made = await t.graphql(INGEST, { text: `to be cancelled ${randomUUID()}` }, a.key);
    const { job, asset } = made.data.ingest;
    expect(await t.app.queues.queue("ingest").getJob(job.id)).toBeTruthy();

    const cancelled = await t.graphql(CANCEL, { id: job.id }, a.key);
    expect(cancelled.errors).toBeUndefined();
    expect(cancelled.data.cancelJob).toMatchObject({ id: job.id, status: "CANCELLED", error: { code: "CANCELLED" } });
    expect(cancelled.data.cancelJob.finishedAt).toBeTruthy();
    expect(await t.app.queues.queue("ingest").getJob(job.id)).toBeFalsy();
    const assetRow = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
    expect(assetRow.status).toBe("FAILED");

    const again = await t.graphql(CANCEL, { id: job.id }, a.key);
    expect(again.errors?.[0]?.extensions?.code).toBe("CONFLICT");
    expect(again.errors?.[0]?.message).toMatch(/already finished \(CANCELLED\)/);
  });

  it("refuses a finished or running job with CONFLICT and another project's with NOT_FOUND, changing nothing", async () => {
    const finished = await t.app.db.job.create({ data: { projectId: a.projectId, kind: "GENERATE", status: "SUCCEEDED", finishedAt: new Date() } });
    const answer = await t.graphql(CANCEL, { id: finished.id }, a.key);
    expect(answer.errors?.[0]?.extensions?.code).toBe("CONFLICT");
    expect(answer.errors?.[0]?.message).toMatch(/already finished \(SUCCEEDED\)/);
    expect((await t.app.db.job.findUniqueOrThrow({ where: { id: finished.id } })).status).toBe("SUCCEEDED");

    const running = await t.app.db.job.create({ data: { projectId: a.projectId, kind: "GENERATE", status: "RUNNING" } });
    const busy = await t.graphql(CANCEL, { id: running.id }, a.key);
    expect(busy.errors?.[0]?.extensions?.code).toBe("CONFLICT");
    expect(busy.errors?.[0]?.message).toMatch(/RUNNING/);

    const theirs = await t.graphql(INGEST, { text: `b's job ${randomUUID()}` }, b.key);
    const foreign = await t.graphql(CANCEL, { id: theirs.data.ingest.job.id }, a.key);
    expect(foreign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await t.app.db.job.findUniqueOrThrow({ where: { id: theirs.data.ingest.job.id } })).status).toBe("QUEUED");
  });
});
