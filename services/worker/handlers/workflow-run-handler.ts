import { advanceRun } from "../../../workflows/engine/run-coordinator.ts";
import { inSpan } from "../../observability/tracing.ts";
import type { JobHandler } from "../job-handler.ts";

/** Advances a workflow run; the run's state lives in its Run and StepRun rows. */
export const workflowRunHandler: JobHandler<"workflow-run"> = {
  tracked: false,
  async run({ runId, projectId }, { app }) {
    // Start, resume and recovery: queue again any step left QUEUED without a job.
    // A span per advance; the steps it queues continue its trace (services/observability).
    await inSpan("workflow.run", { "tessera.workflow.run_id": runId, "tessera.project.id": projectId }, () => advanceRun(app, runId, { requeue: true }));
  },
};
