import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { reconcileOnce } from "../../services/worker/reconciler.ts";
import { startWorkerPool, type WorkerPool } from "../../services/worker/worker-pool.ts";
import { registerStepType } from "../../workflows/steps/step-registry.ts";
import { defineStepType } from "../../workflows/steps/step-type.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// Issue #15's full chaos round: a step without retries lost its database connection for a moment on its only
// attempt ("Connection terminated due to connection timeout"), and the run FAILED with INTERNAL. The failure was
// the database's, not the step's: its rows stay open, and the reconciler runs it again, as after an outage.
let calls = 0;
registerStepType(
  defineStepType({
    uses: "test.database-blip",
    description: "loses its database connection on its first call",
    with: z.object({}),
    output: z.object({ calls: z.number() }),
    async run() {
      calls += 1;
      if (calls === 1) throw new Error("Connection terminated due to connection timeout");
      return { calls };
    },
  }),
);

let t: TestApp;
let pool: WorkerPool | undefined;
beforeAll(async () => {
  t = await startTestApp();
  pool = startWorkerPool(t.app, { reconcile: false, modelCalls: false });
});
afterAll(async () => {
  await pool?.close();
  await t?.close();
});

it("a step whose only attempt lost the database is run again by the reconciler, not failed", async () => {
  const { key, projectId } = await t.createProject();
  const definition = `apiVersion: tessera/v1
kind: Workflow
slug: database-blip
steps:
  - id: blip
    uses: test.database-blip
outputs:
  calls: "\${{ steps.blip.output.calls }}"
`;
  expect((await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`, { d: definition }, key)).errors).toBeUndefined();
  const started = await t.graphql(`mutation { runWorkflow(slug: "database-blip") { id } }`, {}, key);
  expect(started.errors).toBeUndefined();
  const runId = started.data.runWorkflow.id as string;

  const step = await eventually(async () => {
    const row = await t.app.db.stepRun.findFirstOrThrow({ where: { runId, key: "blip" } });
    return (await t.app.queues.queue("workflow-step").getJobState(`${runId}_blip`)) === "failed" ? row : null;
  }, 60_000);
  expect(calls).toBe(1);
  expect(step.status).not.toBe("FAILED");
  expect((await t.app.db.run.findUniqueOrThrow({ where: { id: runId } })).status).toBe("RUNNING");

  const report = await reconcileOnce(t.app, { graceMs: 0, blobGraceMs: 3_600_000, maxRequeues: 3, projectIds: [projectId] });
  expect(report.stepsRequeued).toBe(1);
  const run = await eventually(async () => {
    const row = await t.app.db.run.findUniqueOrThrow({ where: { id: runId } });
    return ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
  }, 60_000);
  expect(run.status).toBe("SUCCEEDED");
  expect(run.output).toEqual({ calls: 2 });
}, 120_000);
