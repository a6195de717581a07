import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startWorkerPool, type WorkerPool } from "../../services/worker/worker-pool.ts";
import { encryptSecret } from "../../services/webhooks/secret-box.ts";
import { reconcileOnce, RECONCILE_QUEUE, startReconciler, type ReconcileOptions } from "../../services/worker/reconciler.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// Rows are left without their BullMQ job by hand (as a crash between the commit and queue.add would leave them);
// the workers run in this process without the scheduled reconciler, and passes are run scoped to this file's projects.
let t: TestApp;
let pool: WorkerPool;
beforeAll(async () => {
  t = await startTestApp();
  pool = startWorkerPool(t.app, { reconcile: false, modelCalls: false });
});
afterAll(async () => {
  await pool?.close();
  await t?.close();
});

function options(projectId: string, extra: Partial<ReconcileOptions> = {}): ReconcileOptions {
  return { graceMs: 0, blobGraceMs: 3_600_000, maxRequeues: 3, projectIds: [projectId], ...extra };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A text ingest accepted by the gateway whose BullMQ job is then deleted before any worker took it. */
async function ingestWithoutJob(key: string, text: string) {
  // Hold the ingest queue so the job cannot start before it is deleted.
  await t.app.queues.queue("ingest").pause();
  try {
    const response = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`, { text }, key);
    expect(response.errors).toBeUndefined();
    const { asset, job } = response.data.ingest as { asset: { id: string }; job: { id: string } };
    expect(await t.app.queues.queue("ingest").remove(job.id)).toBe(1);
    return { assetId: asset.id, jobId: job.id };
  } finally {
    await t.app.queues.queue("ingest").resume();
  }
}

it("enqueues again an ingest whose job never reached the queue, and its asset ends READY", async () => {
  const { key, projectId } = await t.createProject();
  const { assetId, jobId } = await ingestWithoutJob(key, "a row committed, then the process died before queue.add");
  // Without a reconciler nothing ever takes it.
  await sleep(1500);
  expect((await t.app.db.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("QUEUED");

  const report = await reconcileOnce(t.app, options(projectId));
  expect(report.jobsRequeued).toBe(1);
  const asset = await eventually(async () => {
    const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: assetId } });
    return row.status === "READY" || row.status === "FAILED" ? row : null;
  }, 60_000);
  expect(asset.status).toBe("READY");
  expect((await t.app.db.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("SUCCEEDED");
  // A second pass finds nothing to do: the row is finished.
  expect((await reconcileOnce(t.app, options(projectId))).jobsRequeued).toBe(0);
}, 90_000);

it("leaves alone a row inside its grace period, and one whose job is in the queue", async () => {
  const { key, projectId } = await t.createProject();
  const { jobId } = await ingestWithoutJob(key, "too young to be called lost");
  expect((await reconcileOnce(t.app, options(projectId, { graceMs: 3_600_000 }))).jobsRequeued).toBe(0);
  expect((await t.app.db.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("QUEUED");
  // Queued on purpose while the queue is paused: the job is there, waiting.
  await t.app.queues.queue("ingest").pause();
  try {
    const waiting = await t.graphql(`mutation { ingest(input: { text: "waiting in a paused queue" }) { job { id } } }`, {}, key);
    const report = await reconcileOnce(t.app, options(projectId));
    expect(report.jobsRequeued).toBe(1); // only the first one
    expect(await t.app.queues.queue("ingest").getJobState(waiting.data.ingest.job.id)).toBe("waiting");
  } finally {
    await t.app.queues.queue("ingest").resume();
  }
}, 90_000);

it("fails with WORKER_LOST a row whose job keeps being lost, and marks its asset FAILED", async () => {
  const { key, projectId } = await t.createProject();
  // A job's end is queued as a project event only for a project subscribed to it (services/worker/job-tracker.ts).
  await t.app.db.webhookSubscription.create({
    data: { projectId, url: "https://receiver.invalid/hook", events: ["job.failed"], secretEncrypted: encryptSecret("unused") },
  });
  await t.app.queues.queue("ingest").pause();
  try {
    const { assetId, jobId } = await ingestWithoutJob(key, "lost every time");
    await t.app.queues.queue("ingest").pause();
    for (let pass = 0; pass < 2; pass++) {
      expect((await reconcileOnce(t.app, options(projectId, { maxRequeues: 2 }))).jobsRequeued).toBe(1);
      await t.app.queues.queue("ingest").remove(jobId);
    }
    expect((await reconcileOnce(t.app, options(projectId, { maxRequeues: 2 }))).jobsFailed).toBe(1);
    const job = await t.app.db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job.status).toBe("FAILED");
    expect(job.error).toMatchObject({ code: "WORKER_LOST", message: expect.stringContaining("lost from the queue") });
    expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: assetId } })).status).toBe("FAILED");
    // As a processor's final failure would: webhooks and triggers hear of it (a `job.failed` project event).
    const events = await t.app.queues.queue("project-event").getJobs(["waiting", "active", "delayed", "completed", "failed"]);
    expect(events.filter((event) => event?.data.subjectId === jobId).map((event) => event.data.type)).toEqual(["job.failed"]);
  } finally {
    await t.app.queues.queue("ingest").resume();
  }
}, 90_000);

async function publishAndRun(key: string, slug: string) {
  const definition = `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: first
    uses: transform
    with: { value: "one" }
  - id: second
    uses: transform
    needs: [first]
    with: { value: "\${{ steps.first.output.value }}-two" }
outputs:
  value: "\${{ steps.second.output.value }}"
`;
  const published = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`, { d: definition }, key);
  expect(published.errors).toBeUndefined();
  const started = await t.graphql(`mutation ($slug: String!) { runWorkflow(slug: $slug) { id } }`, { slug }, key);
  expect(started.errors).toBeUndefined();
  return started.data.runWorkflow.id as string;
}

const finished = (runId: string) =>
  eventually(async () => {
    const run = await t.app.db.run.findUniqueOrThrow({ where: { id: runId } });
    return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(run.status) ? run : null;
  }, 60_000);

it("starts a run whose first advance was lost", async () => {
  const { key, projectId } = await t.createProject();
  // A top-level run's first advance happens inside its start (the same commit); a child run's is a job. As a crash
  // after the run was stored, before anything advanced it, would leave it: QUEUED, every step PENDING, no job.
  const runId = await publishAndRun(key, "never-started");
  expect((await finished(runId)).status).toBe("SUCCEEDED");
  await t.app.db.run.update({ where: { id: runId }, data: { status: "QUEUED", output: null as never, startedAt: null, finishedAt: null } });
  await t.app.db.stepRun.updateMany({ where: { runId }, data: { status: "PENDING", input: null as never, output: null as never, attempts: 0, startedAt: null, finishedAt: null } });
  await sleep(1500);
  expect((await t.app.db.run.findUniqueOrThrow({ where: { id: runId } })).status).toBe("QUEUED");
  expect((await reconcileOnce(t.app, options(projectId))).runsAdvanced).toBe(1);
  const run = await finished(runId);
  expect(run.status).toBe("SUCCEEDED");
  expect(run.output).toEqual({ value: "one-two" });
}, 90_000);

it("moves on a RUNNING run whose advance was lost after a step, and re-enqueues a QUEUED step without a job", async () => {
  const { key, projectId } = await t.createProject();
  const runId = await publishAndRun(key, "lost-advance");
  expect((await finished(runId)).status).toBe("SUCCEEDED");
  const queue = t.app.queues.queue("workflow-step");

  // As a crash after `first` succeeded, before the advance queued `second`, would leave it.
  await t.app.db.run.update({ where: { id: runId }, data: { status: "RUNNING", output: null as never, finishedAt: null } });
  await t.app.db.stepRun.updateMany({ where: { runId, key: "second" }, data: { status: "PENDING", output: null as never, finishedAt: null, startedAt: null } });
  await queue.remove(`${runId}_second`);
  await sleep(1000);
  expect((await t.app.db.run.findUniqueOrThrow({ where: { id: runId } })).status).toBe("RUNNING");
  expect((await reconcileOnce(t.app, options(projectId))).runsAdvanced).toBe(1);
  expect((await finished(runId)).status).toBe("SUCCEEDED");

  // As a crash after the advance marked `second` QUEUED, before its job was added, would leave it.
  await t.app.db.run.update({ where: { id: runId }, data: { status: "RUNNING", output: null as never, finishedAt: null } });
  await t.app.db.stepRun.updateMany({ where: { runId, key: "second" }, data: { status: "QUEUED", output: null as never, finishedAt: null, startedAt: null } });
  await queue.remove(`${runId}_second`);
  const report = await reconcileOnce(t.app, options(projectId));
  expect(report.stepsRequeued).toBe(1);
  const run = await finished(runId);
  expect(run.status).toBe("SUCCEEDED");
  expect(run.output).toEqual({ value: "one-two" });
}, 90_000);

it("removes a blob no asset references once it is older than the grace period, and keeps a referenced one", async () => {
  const { key, projectId } = await t.createProject();
  const ingested = await t.graphql(`mutation { ingest(input: { text: "a referenced blob" }) { asset { id sha256 } } }`, {}, key);
  const referenced = ingested.data.ingest.asset.sha256 as string;
  const orphan = await t.app.blobs.put(Buffer.from("bytes whose asset row was never written"));
  const old = new Date(Date.now() - 2 * 3_600_000);
  for (const sha256 of [referenced, orphan.sha256]) await fs.utimes(await t.app.blobs.localPath(sha256), old, old);
  const young = await t.app.blobs.put(Buffer.from("an upload still in flight"));

  const report = await reconcileOnce(t.app, options(projectId));
  expect(report.blobsRemoved).toBe(1);
  expect(await t.app.blobs.has(orphan.sha256)).toBe(false);
  expect(await t.app.blobs.has(referenced)).toBe(true);
  expect(await t.app.blobs.has(young.sha256)).toBe(true);
  // Nothing is left aside in the store's temporary folder.
  const tmp = await fs.readdir(path.join(t.app.config.dataDir, "tmp")).catch(() => []);
  expect(tmp.filter((name) => name.startsWith("deleting-"))).toEqual([]);
}, 60_000);

it("runs as a BullMQ job scheduler: one schedule however many workers start it", async () => {
  // Nothing in this shared test database is old enough for these graces: the scheduled passes change nothing.
  const other = await startTestApp({
    env: { RECONCILE_INTERVAL_MS: "500", RECONCILE_GRACE_MS: String(10 * 365 * 24 * 3_600_000), ORPHAN_BLOB_GRACE_MS: String(10 * 365 * 24 * 3_600_000) },
  });
  const first = await startReconciler(other.app);
  const second = await startReconciler(other.app);
  try {
    const queue = other.app.queues.queue(RECONCILE_QUEUE as never);
    const schedulers = await queue.getJobSchedulers();
    expect(schedulers).toHaveLength(1);
    expect(schedulers[0]).toMatchObject({ key: "reconciler", every: 500 });
    const passes = await eventually(async () => ((await queue.getCompletedCount()) >= 2 ? queue.getCompleted() : null), 30_000);
    expect(passes[0]!.returnvalue).toMatchObject({ jobsRequeued: 0, runsAdvanced: 0, blobsRemoved: 0 });
  } finally {
    await first.close();
    await second.close();
    await other.app.queues.queue(RECONCILE_QUEUE as never).obliterate({ force: true }).catch(() => {});
    await other.close();
  }
}, 60_000);

it("leaves a RUNNING step without a job alone while the job of the step before it (which runs it) is live, and re-enqueues it once that job is gone", async () => {
  const { key, projectId } = await t.createProject();
  const definition = `apiVersion: tessera/v1
kind: Workflow
slug: run-here
steps:
  - id: first
    uses: http
    with: { url: "http://127.0.0.1:9/never-called" }
  - id: second
    uses: transform
    needs: [first]
    with: { value: "two" }
outputs:
  value: "\${{ steps.second.output.value }}"
`;
  const published = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`, { d: definition }, key);
  expect(published.errors).toBeUndefined();
  const version = await t.app.db.workflowVersion.findFirstOrThrow({ where: { workflow: { projectId, slug: "run-here" } } });
  const runId = crypto.randomUUID();
  // As the engine leaves a run while `first`'s job runs `second` right after it (issue #20): `second` RUNNING with
  // no job of its own. (`second` is a transform here only so that, once handed on, its job can finish it offline.)
  await t.app.db.run.create({ data: { id: runId, projectId, workflowVersionId: version.id, status: "RUNNING", startedAt: new Date(Date.now() - 60_000) } });
  await t.app.db.stepRun.createMany({
    data: [
      { runId, stepId: "first", key: "first", status: "SUCCEEDED", output: {}, attempts: 1, createdAt: new Date(Date.now() - 60_000), finishedAt: new Date(Date.now() - 60_000) },
      { runId, stepId: "second", key: "second", status: "RUNNING", input: { value: "two" }, attempts: 1, createdAt: new Date(Date.now() - 60_000), startedAt: new Date(Date.now() - 60_000) },
    ],
  });
  const queue = t.app.queues.queue("workflow-step");
  await queue.pause();
  try {
    // `first`'s job, still live (waiting here, as good as active for the reconciler).
    await queue.add("workflow-step", { jobId: `${runId}_first`, runId, stepRunId: "unused", projectId }, { jobId: `${runId}_first` });
    let report = await reconcileOnce(t.app, options(projectId));
    expect(report.stepsRequeued).toBe(0);
    expect(report.runsAdvanced).toBe(0);
    expect(await queue.getJob(`${runId}_second`)).toBeUndefined();
    // That job is gone (its worker died and it failed for stalling): `second` gets a job of its own.
    await queue.remove(`${runId}_first`);
    report = await reconcileOnce(t.app, options(projectId));
    expect(report.stepsRequeued).toBe(1);
  } finally {
    await queue.resume();
  }
  const run = await finished(runId);
  expect(run.status).toBe("SUCCEEDED");
  expect(run.output).toEqual({ value: "two" });
}, 60_000);
