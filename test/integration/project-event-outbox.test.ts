import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TesseraError, ErrorCode } from "../../services/core/errors.ts";
import { reconcileOnce } from "../../services/worker/reconciler.ts";
import { relayProjectEvents } from "../../services/queue/project-events.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Project events (webhooks, asset triggers) are written with the change that makes them and queued after its commit
 * (a transactional outbox). Before, they were queued after the commit only: a Redis that refused the add, or a
 * process that stopped in between, lost the event for good.
 */

let t: TestApp;
beforeAll(async () => {
  // No model manifests: the test is about the event, not about which encoder weights a checkout has.
  t = await startTestApp({ worker: true, noModels: true });
});
afterAll(async () => {
  await t?.close();
});

const reconcileOptions = (projectId: string) => ({ graceMs: 60_000, blobGraceMs: 3_600_000, maxRequeues: 3, projectIds: [projectId] });

async function queuedEvents(subjectId: string) {
  const jobs = await t.app.queues.queue("project-event").getJobs(["waiting", "active", "delayed", "completed", "failed"]);
  return jobs.filter((job) => job?.data?.subjectId === subjectId).map((job) => ({ type: job.data.type as string, eventId: job.data.eventId as string, jobId: job.id }));
}

/** A project with an asset trigger for any asset: every asset's READY makes an `asset.ready` event. */
async function listeningProject() {
  const project = await t.createProject();
  const workflow = await t.app.db.workflow.create({ data: { projectId: project.projectId, slug: `on-assets-${randomUUID().slice(0, 8)}` } });
  await t.app.db.workflowTrigger.create({ data: { projectId: project.projectId, workflowId: workflow.id, kind: "ASSET", key: "api:any" } });
  return project;
}

async function ingestAndFinish(key: string) {
  const made = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`, { text: `outbox ${randomUUID()}` }, key);
  expect(made.errors).toBeUndefined();
  const jobId = made.data.ingest.job.id as string;
  await eventually(async () => ((await t.app.db.job.findUnique({ where: { id: jobId } }))?.status === "SUCCEEDED" ? true : null), 30_000);
  return made.data.ingest.asset.id as string;
}

describe("project events through the outbox", () => {
  it("an event Redis refused at the asset's READY is not lost: the next reconciler pass queues it", async () => {
    const { key, projectId } = await listeningProject();
    // Redis refuses project events (as a Redis that is down would), and only them: the ingest itself goes on.
    const refused = () => new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the job queue is unavailable (test)");
    const { enqueue, enqueueBulk } = t.app.queues;
    const spies = [
      vi.spyOn(t.app.queues, "enqueue").mockImplementation(function (this: unknown, ...args: Parameters<typeof enqueue>) {
        if (args[0] === "project-event") return Promise.reject(refused());
        return enqueue.apply(t.app.queues, args) as ReturnType<typeof enqueue>;
      }),
      vi.spyOn(t.app.queues, "enqueueBulk").mockImplementation(function (this: unknown, ...args: Parameters<typeof enqueueBulk>) {
        if (args[0] === "project-event") return Promise.reject(refused());
        return enqueueBulk.apply(t.app.queues, args) as ReturnType<typeof enqueueBulk>;
      }),
    ];
    let assetId: string;
    try {
      assetId = await ingestAndFinish(key);
      expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: assetId } })).status).toBe("READY");
      expect(await queuedEvents(assetId)).toEqual([]);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    const report = await reconcileOnce(t.app, reconcileOptions(projectId));
    expect(report.projectEventsRelayed).toBe(1);
    const [event] = await queuedEvents(assetId);
    expect(event).toMatchObject({ type: "asset.ready" });
    // Its row's id is the event's id and its job's: queued again by a later relay, it is the same event.
    expect(event!.jobId).toBe(event!.eventId);
    expect(await t.app.db.projectEventOutbox.count({ where: { projectId } })).toBe(0);
    // And the worker handles it, as it would have at once.
    await eventually(async () => ((await t.app.queues.queue("project-event").getJobState(event!.jobId!)) === "completed" ? true : null), 30_000);
  }, 90_000);

  it("queues the event right after the commit when Redis takes it, and leaves nothing in the outbox", async () => {
    const { key, projectId } = await listeningProject();
    const assetId = await ingestAndFinish(key);
    expect((await eventually(async () => ((await queuedEvents(assetId)).length ? queuedEvents(assetId) : null))).map((event) => event.type)).toEqual(["asset.ready"]);
    expect(await t.app.db.projectEventOutbox.count({ where: { projectId } })).toBe(0);
  }, 60_000);

  it("two relays at once queue each waiting event once", async () => {
    const { projectId } = await t.createProject();
    const subjects = Array.from({ length: 5 }, () => randomUUID());
    await t.app.db.projectEventOutbox.createMany({ data: subjects.map((subjectId) => ({ projectId, type: "job.succeeded", subjectId })) });
    const relayed = await Promise.all([relayProjectEvents(t.app, { projectIds: [projectId] }), relayProjectEvents(t.app, { projectIds: [projectId] })]);
    expect(relayed[0] + relayed[1]).toBe(5);
    for (const subjectId of subjects) expect((await queuedEvents(subjectId)).map((event) => event.type)).toEqual(["job.succeeded"]);
    expect(await t.app.db.projectEventOutbox.count({ where: { projectId } })).toBe(0);
  });
});
