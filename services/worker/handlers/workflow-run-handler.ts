import { advanceRun } from "../../../workflows/engine/run-coordinator.ts";
import type { JobHandler } from "../job-handler.ts";

/** Advances a workflow run; the run's state lives in its Run and StepRun rows. */
export const workflowRunHandler: JobHandler<"workflow-run"> = {
  tracked: false,
  async run({ runId }, { app }) {
    // Start, resume and recovery: queue again any step left QUEUED without a job.
    await advanceRun(app, runId, { requeue: true });
  },
};
