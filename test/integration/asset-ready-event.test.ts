import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  // No model manifests: the test is about the event, not about which encoder weights a checkout has.
  t = await startTestApp({ worker: true, noModels: true });
});
afterAll(async () => {
  await t?.close();
});

describe("the asset.ready project event", () => {
  it("is queued only for a project that listens: an asset trigger that may match the asset, or a subscription", async () => {
    const { key, projectId } = await t.createProject();
    const ingestAndFinish = async (text: string) => {
      const made = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`, { text }, key);
      expect(made.errors).toBeUndefined();
      const jobId = made.data.ingest.job.id as string;
      await eventually(async () => ((await t.app.db.job.findUnique({ where: { id: jobId } }))?.status === "SUCCEEDED" ? true : null), 30_000);
      return made.data.ingest.asset.id as string;
    };
    const queued = async (assetId: string) => {
      const jobs = await t.app.queues.queue("project-event").getJobs(["waiting", "active", "delayed", "completed", "failed"]);
      return jobs.filter((entry) => entry?.data?.subjectId === assetId).map((entry) => entry.data.type as string);
    };

    // Nothing listens: no project-event job at all.
    const quiet = await ingestAndFinish(`nobody listens ${randomUUID()}`);
    // An asset trigger for videos does not listen for a text, nor a paused one for any asset.
    const workflow = await t.app.db.workflow.create({ data: { projectId, slug: `on-assets-${randomUUID().slice(0, 8)}` } });
    await t.app.db.workflowTrigger.create({ data: { projectId, workflowId: workflow.id, kind: "ASSET", key: "api:videos", modality: "VIDEO" } });
    await t.app.db.workflowTrigger.create({ data: { projectId, workflowId: workflow.id, kind: "ASSET", key: "api:paused", paused: true } });
    const otherModality = await ingestAndFinish(`a trigger for videos ${randomUUID()}`);
    expect(await queued(quiet)).toEqual([]);
    expect(await queued(otherModality)).toEqual([]);

    // A trigger for any asset, made just before: the next asset's READY queues the event.
    await t.app.db.workflowTrigger.create({ data: { projectId, workflowId: workflow.id, kind: "ASSET", key: "api:any" } });
    const heard = await ingestAndFinish(`a trigger for anything ${randomUUID()}`);
    expect(await queued(heard)).toEqual(["asset.ready"]);
  });
});
