import type { Job as BullJob } from "bullmq";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { JobHandler } from "../../services/worker/job-handler.ts";
import { jobHandlers } from "../../services/worker/handlers/index.ts";
import { reconcileLostJob } from "../../services/worker/lost-jobs.ts";
import type { QueueName } from "../../services/queue/job-payloads.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp(); // no worker: the rows are marked by hand below
});
afterAll(async () => t?.close());

async function ingestedRows(text: string) {
  const { key, projectId } = await t.createProject();
  const response = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`, { text }, key);
  expect(response.errors).toBeUndefined();
  const { asset, job } = response.data.ingest;
  return { projectId, assetId: asset.id as string, jobId: job.id as string };
}

/** What BullMQ hands the `failed` listener for a job that stalled `stalls` times. */
function stalledJob(data: unknown, stalls: number) {
  return { data, stalledCounter: stalls } as unknown as BullJob;
}

const ingest = jobHandlers.ingest as JobHandler<QueueName>;

it("marks a running job FAILED with WORKER_LOST naming how often its worker stopped, and its asset FAILED", async () => {
  const rows = await ingestedRows("lost three times");
  await t.app.db.job.update({ where: { id: rows.jobId }, data: { status: "RUNNING" } });
  await reconcileLostJob(t.app, "ingest", ingest, stalledJob(rows, 3), "job stalled more than allowable limit");
  const job = await t.app.db.job.findUniqueOrThrow({ where: { id: rows.jobId } });
  expect(job.status).toBe("FAILED");
  expect(job.error).toMatchObject({ code: "WORKER_LOST", message: expect.stringContaining("stopped 3 times"), details: { stalls: 3 } });
  expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: rows.assetId } })).status).toBe("FAILED");
});

it("leaves a job that already finished (its worker died after writing the row) as it is", async () => {
  const rows = await ingestedRows("finished, then lost");
  await t.app.db.job.update({ where: { id: rows.jobId }, data: { status: "SUCCEEDED" } });
  await t.app.db.asset.update({ where: { id: rows.assetId }, data: { status: "READY" } });
  await reconcileLostJob(t.app, "ingest", ingest, stalledJob(rows, 3), "job stalled more than allowable limit");
  expect((await t.app.db.job.findUniqueOrThrow({ where: { id: rows.jobId } })).status).toBe("SUCCEEDED");
  expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: rows.assetId } })).status).toBe("READY");
});
