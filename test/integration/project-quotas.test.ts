import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkConcurrentJobs } from "../../services/limits/project-quotas.ts";
import { statementsOf } from "../support/pg-statements.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

// No worker: runs and jobs stay open (a run's `wait` step stays QUEUED), so they keep holding the project's quota.
// (A run of `transform` steps alone ends inside its start, so it never holds a slot.)
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { QUOTA_CONCURRENT_RUNS: "2", QUOTA_CONCURRENT_JOBS: "3", QUOTA_STORAGE_BYTES: "1000" } });
});
afterAll(() => t?.close());

const PUBLISH = `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`;
const RUN = `mutation ($slug: String!) { runWorkflow(slug: $slug, input: {}) { id status } }`;
const INGEST_TEXT = `mutation ($text: String!) { ingest(input: { text: $text }) { asset { id byteSize } job { id } } }`;
const WORKFLOW = `apiVersion: tessera/v1
kind: Workflow
slug: quota
steps:
  - id: one
    uses: wait
    with: { prompt: "hold the slot" }
`;

async function projectWithWorkflow() {
  const project = await t.createProject();
  const published = await t.graphql(PUBLISH, { d: WORKFLOW }, project.key);
  expect(published.errors).toBeUndefined();
  return project;
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

describe("concurrent runs", () => {
  it("refuses a run past QUOTA_CONCURRENT_RUNS with QUOTA_EXCEEDED and stores nothing; another project still runs", async () => {
    const busy = await projectWithWorkflow();
    for (let i = 0; i < 2; i++) expect((await t.graphql(RUN, { slug: "quota" }, busy.key)).errors).toBeUndefined();

    const refused = await t.graphql(RUN, { slug: "quota" }, busy.key);
    expect(refused.data).toBeNull();
    expect(refused.errors?.[0]?.extensions?.code).toBe("QUOTA_EXCEEDED");
    expect(refused.errors?.[0]?.extensions?.details).toMatchObject({ quota: "QUOTA_CONCURRENT_RUNS", limit: 2, used: 2 });
    expect(await t.app.db.run.count({ where: { projectId: busy.projectId } })).toBe(2);

    const other = await projectWithWorkflow();
    expect((await t.graphql(RUN, { slug: "quota" }, other.key)).errors).toBeUndefined();

    // A run that ends, however it ends, frees its slot: the count is read from the rows.
    const [first] = await t.app.db.run.findMany({ where: { projectId: busy.projectId }, take: 1 });
    await t.app.db.run.update({ where: { id: first!.id }, data: { status: "FAILED", finishedAt: new Date() } });
    expect((await t.graphql(RUN, { slug: "quota" }, busy.key)).errors).toBeUndefined();
  });

  it("lets only as many of several racing starts through as the quota allows", async () => {
    const racing = await projectWithWorkflow();
    const answers = await Promise.all(Array.from({ length: 6 }, () => t.graphql(RUN, { slug: "quota" }, racing.key)));
    expect(answers.filter((answer) => !answer.errors).length).toBe(2);
    expect(answers.filter((answer) => answer.errors?.[0]?.extensions?.code === "QUOTA_EXCEEDED").length).toBe(4);
    expect(await t.app.db.run.count({ where: { projectId: racing.projectId } })).toBe(2);
  });
});

describe("storage", () => {
  it("refuses an ingest that would pass QUOTA_STORAGE_BYTES without storing its asset row or its blob", async () => {
    const project = await t.createProject();
    const first = "a".repeat(600);
    expect((await t.graphql(INGEST_TEXT, { text: first }, project.key)).errors).toBeUndefined();

    const second = "b".repeat(600);
    const refused = await t.graphql(INGEST_TEXT, { text: second }, project.key);
    expect(refused.errors?.[0]?.extensions?.code).toBe("QUOTA_EXCEEDED");
    expect(refused.errors?.[0]?.extensions?.details).toMatchObject({ quota: "QUOTA_STORAGE_BYTES", limit: 1000, used: 600 });
    expect(await t.app.db.asset.count({ where: { projectId: project.projectId } })).toBe(1);
    expect(await t.app.db.job.count({ where: { projectId: project.projectId } })).toBe(1);
    expect(await t.app.blobs.has(sha256(second))).toBe(false);

    // What is left still fits.
    expect((await t.graphql(INGEST_TEXT, { text: "c".repeat(400) }, project.key)).errors).toBeUndefined();
  });

  it("gives a deleted asset's bytes back to the quota", async () => {
    const project = await t.createProject();
    const first = await t.graphql<{ ingest: { asset: { id: string } } }>(INGEST_TEXT, { text: "d".repeat(900) }, project.key);
    expect(first.errors).toBeUndefined();
    expect((await t.graphql(INGEST_TEXT, { text: "e".repeat(300) }, project.key)).errors?.[0]?.extensions?.code).toBe("QUOTA_EXCEEDED");
    const deleted = await t.graphql(`mutation ($id: ID!) { deleteAsset(id: $id) { id } }`, { id: first.data!.ingest.asset.id }, project.key);
    expect(deleted.errors).toBeUndefined();
    expect((await t.graphql(INGEST_TEXT, { text: "e".repeat(300) }, project.key)).errors).toBeUndefined();
  });

  it("keeps the bytes stored as a running total with the rows (no sum over every asset per upload)", async () => {
    const project = await t.createProject();
    const other = await t.createProject();
    const stored = async (projectId: string) => {
      const [row] = await t.app.db.$queryRaw<{ bytes: number | null }[]>`SELECT sum(bytes)::float8 AS bytes FROM "ProjectStorage" WHERE "projectId" = ${projectId}`;
      return row?.bytes ?? 0;
    };
    const sumOfRows = async (projectId: string) => (await t.app.db.asset.aggregate({ where: { projectId }, _sum: { byteSize: true } }))._sum.byteSize ?? 0;
    for (const text of ["f".repeat(100), "g".repeat(200), "h".repeat(50)]) expect((await t.graphql(INGEST_TEXT, { text }, project.key)).errors).toBeUndefined();
    expect((await t.graphql(INGEST_TEXT, { text: "i".repeat(70) }, other.key)).errors).toBeUndefined();
    expect(await stored(project.projectId)).toBe(350);
    expect(await stored(other.projectId)).toBe(70);

    // Every way a row changes keeps the total: a size rewritten, a row moved between projects, a row deleted.
    const [first, second] = await t.app.db.asset.findMany({ where: { projectId: project.projectId }, orderBy: { byteSize: "asc" } });
    await t.app.db.asset.update({ where: { id: first!.id }, data: { byteSize: 60 } });
    await t.app.db.asset.update({ where: { id: second!.id }, data: { projectId: other.projectId } });
    expect(await stored(project.projectId)).toBe(await sumOfRows(project.projectId));
    expect(await stored(other.projectId)).toBe(await sumOfRows(other.projectId));
    await t.app.db.asset.deleteMany({ where: { projectId: project.projectId } });
    expect(await stored(project.projectId)).toBe(0);

    // Totals counted before the running total existed sit in slot 0 (the migration's backfill): a later delete of such
    // an asset is taken from the project's sum, whichever slot its id picks.
    const before = await stored(other.projectId);
    expect(before).toBe(170);
    await t.app.db.$executeRaw`DELETE FROM "ProjectStorage" WHERE "projectId" = ${other.projectId}`;
    await t.app.db.$executeRaw`INSERT INTO "ProjectStorage" ("projectId", slot, bytes) VALUES (${other.projectId}, 0, ${before})`;
    await t.app.db.asset.deleteMany({ where: { projectId: other.projectId } });
    expect(await stored(other.projectId)).toBe(0);
    expect((await t.graphql(INGEST_TEXT, { text: "j".repeat(40) }, other.key)).errors).toBeUndefined();
    expect(await stored(other.projectId)).toBe(40);

    // A deleted project leaves no total behind.
    await t.app.db.project.delete({ where: { id: other.projectId } });
    const [left] = await t.app.db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM "ProjectStorage" WHERE "projectId" = ${other.projectId}`;
    expect(left!.n).toBe(0);
  });
});

describe("concurrent jobs", () => {
  it("refuses an ingest past QUOTA_CONCURRENT_JOBS queued or running, before storing anything", async () => {
    const project = await t.createProject();
    for (let i = 0; i < 3; i++) expect((await t.graphql(INGEST_TEXT, { text: `job ${i}` }, project.key)).errors).toBeUndefined();
    const refused = await t.graphql(INGEST_TEXT, { text: "one too many" }, project.key);
    expect(refused.errors?.[0]?.extensions?.code).toBe("QUOTA_EXCEEDED");
    expect(refused.errors?.[0]?.extensions?.details).toMatchObject({ quota: "QUOTA_CONCURRENT_JOBS", limit: 3, used: 3 });
    expect(await t.app.db.asset.count({ where: { projectId: project.projectId } })).toBe(3);
    expect(await t.app.blobs.has(sha256("one too many"))).toBe(false);
  });
});

describe("the quota checks' statements", () => {
  // Every ingest and generate request reads its project's quotas first: prepared, PostgreSQL parses and plans the
  // count once per connection instead of on every request.
  it("are prepared statements on node-postgres", async () => {
    const project = await t.createProject();
    const sent = await statementsOf(async () => {
      expect((await t.graphql(INGEST_TEXT, { text: `quota statement ${Math.random()}` }, project.key)).errors).toBeUndefined();
      await checkConcurrentJobs(t.app, project.projectId); // generate's and reindex's check
    });
    const quotaReads = sent.filter((statement) => statement.text?.includes(`FROM "Job" WHERE "projectId" = $1 AND status::text IN`));
    expect(quotaReads.length).toBeGreaterThanOrEqual(2);
    for (const statement of quotaReads) expect(statement.name).toMatch(/^tessera_/);
  });
});
