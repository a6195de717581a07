import { randomUUID } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaClient } from "../../services/core/database.ts";
import { createGateway, type Gateway } from "../../services/gateway/gateway.ts";
import { startTestApp, type GraphQLResponse, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";
import {
  loadLatestVersions,
  loadStepsOfRuns,
  loadVersions,
  loadVersionsOfWorkflows,
  loadWorkflows,
} from "../../schema/workflow-loaders.ts";
import { WorkflowVersionRef } from "../../schema/workflows.ts";

/**
 * The statements a Prisma client sends to PostgreSQL, counted on the wire: every pooled
 * connection's `query` is wrapped as it connects, so nothing reaches the server uncounted.
 */
function countingDatabase() {
  const statements: string[] = [];
  const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 10 });
  pool.on("connect", (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const first = args[0] as string | { text: string };
      statements.push(typeof first === "string" ? first : first.text);
      return query(...args);
    };
  });
  return { db: new PrismaClient({ adapter: new PrismaPg(pool) }), pool, statements };
}

let t: TestApp;
let counted: ReturnType<typeof countingDatabase>;
let gateway: Gateway;
let url: string;

beforeAll(async () => {
  t = await startTestApp();
  counted = countingDatabase();
  // The same application, but its gateway reads through the counted client.
  gateway = createGateway({ ...t.app, db: counted.db });
  const address = await gateway.listen(0, "127.0.0.1");
  url = `http://127.0.0.1:${address.port}/graphql`;
});
afterAll(async () => {
  await gateway?.close();
  await counted?.db.$disconnect();
  await counted?.pool.end().catch(() => {});
  await t?.close();
});

async function graphql(query: string, key: string): Promise<GraphQLResponse> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as GraphQLResponse;
}

/** The statements one request sent; the key's project is looked up first, so it is cached and not counted. */
async function statementsOf(query: string, key: string) {
  await graphql(`{ workflows { slug } }`, key);
  counted.statements.length = 0;
  const result = await graphql(query, key);
  expect(result.errors).toBeUndefined();
  return { data: result.data, statements: [...counted.statements] };
}

const definition = (slug: string, total: number) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: first
    uses: transform
    with: { v: ${total} }
  - id: second
    uses: transform
    needs: [first]
    with: { v: ${total + 1} }
`;

/** A project with `runs` finished runs of two workflows (two versions of one), two steps each. */
async function projectWithRuns(runs: number) {
  const { key, projectId } = await t.createProject();
  const versions: Array<{ id: string; number: number; slug: string }> = [];
  for (const [slug, total] of [["alpha", 1], ["alpha", 2], ["beta", 3]] as const) {
    const published = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { id number slug } }`, { d: definition(slug, total) }, key);
    expect(published.errors).toBeUndefined();
    versions.push(published.data.publishWorkflow);
  }
  const start = Date.now() - 60_000;
  const rows = Array.from({ length: runs }, (_, index) => ({
    id: randomUUID(),
    projectId,
    workflowVersionId: versions[index % versions.length]!.id,
    status: "SUCCEEDED" as const,
    createdAt: new Date(start + index * 10),
  }));
  await t.app.db.run.createMany({ data: rows });
  await t.app.db.stepRun.createMany({
    data: rows.flatMap((run, index) =>
      ["first", "second"].map((stepId, order) => ({
        runId: run.id,
        stepId,
        key: stepId,
        status: "SUCCEEDED" as const,
        createdAt: new Date(start + index * 10 + order),
      })),
    ),
  });
  return { key, projectId, versions, runIds: rows.map((run) => run.id).reverse() };
}

const LIST_RUNS = (limit: number) => `{ runs(limit: ${limit}) { id version { number slug } steps { id status } } }`;

describe("listing runs with their versions and steps", () => {
  it("costs the same few statements for 10 runs as for 100", async () => {
    const project = await projectWithRuns(100);
    const ten = await statementsOf(LIST_RUNS(10), project.key);
    const hundred = await statementsOf(LIST_RUNS(100), project.key);

    expect(hundred.data.runs.map((run: { id: string }) => run.id)).toEqual(project.runIds);
    for (const [index, run] of hundred.data.runs.entries()) {
      const version = project.versions[(99 - index) % project.versions.length]!;
      expect(run.version).toEqual({ number: version.number, slug: version.slug });
      expect(run.steps).toEqual([
        { id: "first", status: "SUCCEEDED" },
        { id: "second", status: "SUCCEEDED" },
      ]);
    }
    console.log(`runs(limit: 10): ${ten.statements.length} statements; runs(limit: 100): ${hundred.statements.length} statements`);
    // One statement for the runs, then one per loaded field (version, its workflow's slug, steps).
    expect(hundred.statements.length).toBe(ten.statements.length);
    expect(hundred.statements.length).toBeLessThanOrEqual(5);
  });

  it("loads a workflow's versions and published version in one statement each, for every workflow listed", async () => {
    const project = await projectWithRuns(3);
    const listed = await statementsOf(`{ workflows { slug versions { number slug } published { number } } }`, project.key);
    expect(listed.data.workflows).toEqual([
      { slug: "alpha", versions: [{ number: 1, slug: "alpha" }, { number: 2, slug: "alpha" }], published: { number: 2 } },
      { slug: "beta", versions: [{ number: 1, slug: "beta" }], published: { number: 1 } },
    ]);
    expect(listed.statements.length).toBeLessThanOrEqual(4);
  });
});

describe("the loaders", () => {
  it("never return another project's rows, whatever keys they are given", async () => {
    const mine = await projectWithRuns(2);
    const theirs = await projectWithRuns(2);
    const { db } = t.app;
    const theirWorkflowIds = (await db.workflow.findMany({ where: { projectId: theirs.projectId } })).map((workflow) => workflow.id);
    const theirVersionIds = theirs.versions.map((version) => version.id);
    // The batch functions, asked for the other project's keys on behalf of mine: nothing.
    expect(await loadWorkflows(db, mine.projectId, theirWorkflowIds)).toEqual([]);
    expect(await loadVersions(db, mine.projectId, theirVersionIds)).toEqual([]);
    expect(await loadVersionsOfWorkflows(db, mine.projectId, theirWorkflowIds)).toEqual([]);
    expect(await loadLatestVersions(db, mine.projectId, theirWorkflowIds)).toEqual([]);
    expect(await loadStepsOfRuns(db, mine.projectId, theirs.runIds)).toEqual([]);
    // The same keys for their own project do load, so the empty answers above are the scoping at work.
    expect(await loadVersions(db, theirs.projectId, theirVersionIds)).toHaveLength(3);
    expect(await loadStepsOfRuns(db, theirs.projectId, theirs.runIds)).toHaveLength(4);

    // Through a request's dataloader: a foreign key is missing, and a caller without a project gets nothing at all.
    const project = await db.project.findUniqueOrThrow({ where: { id: mine.projectId } });
    const context = { app: t.app, project } as Parameters<typeof WorkflowVersionRef.getDataloader>[0];
    const [theirVersionId, myVersionId] = [theirVersionIds[0]!, mine.versions[0]!.id];
    expect(await WorkflowVersionRef.getDataloader(context).load(theirVersionId)).toBeNull();
    expect((await WorkflowVersionRef.getDataloader(context).load(myVersionId)).id).toBe(myVersionId);
    const anonymous = { app: t.app, project: null } as Parameters<typeof WorkflowVersionRef.getDataloader>[0];
    await expect(WorkflowVersionRef.getDataloader(anonymous).load(myVersionId)).rejects.toMatchObject({ code: "UNAUTHENTICATED" });
  });
});
