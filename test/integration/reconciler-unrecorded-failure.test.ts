import { Worker } from "bullmq";
import { afterAll, beforeAll, expect, it } from "vitest";
import { reconcileOnce } from "../../services/worker/reconciler.ts";
import { startWorkerPool, type WorkerPool } from "../../services/worker/worker-pool.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// A job whose processor failed while PostgreSQL was down (issue #15's postgres chaos scenario): its last attempt
// failed in BullMQ, and writing that failure to its row failed too, so the row still says QUEUED. The failure was
// the database's, not the job's: the reconciler must run it again, not fail it with WORKER_LOST.
let t: TestApp;
let pool: WorkerPool | undefined;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await pool?.close();
  await t?.close();
});

it("runs again a job the queue failed while its row could not be written, and its asset ends READY", async () => {
  const { key, projectId } = await t.createProject();
  const response = await t.graphql(`mutation { ingest(input: { text: "failed while the database was down" }) { asset { id } job { id } } }`, {}, key);
  expect(response.errors).toBeUndefined();
  const { asset, job } = response.data.ingest as { asset: { id: string }; job: { id: string } };

  // A processor that cannot reach the database on any attempt: it marks nothing, and BullMQ fails the job at last.
  const unreachable = new Worker(
    "ingest",
    async () => {
      throw new Error("Can't reach database server at 127.0.0.1:5432");
    },
    { connection: t.app.redis.duplicate(), prefix: t.app.config.QUEUE_PREFIX },
  );
  try {
    await eventually(async () => ((await t.app.queues.queue("ingest").getJobState(job.id)) === "failed" ? true : null), 30_000);
  } finally {
    await unreachable.close();
  }
  expect((await t.app.db.job.findUniqueOrThrow({ where: { id: job.id } })).status).toBe("QUEUED");

  pool = startWorkerPool(t.app, { reconcile: false, modelCalls: false });
  const report = await reconcileOnce(t.app, { graceMs: 0, blobGraceMs: 3_600_000, maxRequeues: 3, projectIds: [projectId] });
  expect(report).toMatchObject({ jobsRequeued: 1, jobsFailed: 0 });
  const row = await eventually(async () => {
    const current = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
    return current.status === "READY" || current.status === "FAILED" ? current : null;
  }, 60_000);
  expect(row.status).toBe("READY");
  expect((await t.app.db.job.findUniqueOrThrow({ where: { id: job.id } })).status).toBe("SUCCEEDED");
}, 90_000);
