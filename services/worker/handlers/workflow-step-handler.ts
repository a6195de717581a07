import { executeStep, failStep } from "../../../workflows/engine/step-executor.ts";
import { inSpan } from "../../observability/tracing.ts";
import type { JobHandler } from "../job-handler.ts";

/** Runs one workflow step; retries and backoff are the step's own, set on its BullMQ job. */
export const workflowStepHandler: JobHandler<"workflow-step"> = {
  tracked: false,
  async run(payload, { app, attempt, logger }) {
    // A span per attempt of a step (named by the step once the engine knows it): map items and an agent's
    // tool calls are jobs queued inside it, so their spans are its children (services/observability).
    const attributes = { "tessera.workflow.run_id": payload.runId, "tessera.workflow.step_run_id": payload.stepRunId, "tessera.project.id": payload.projectId, "tessera.attempt": attempt };
    await inSpan("workflow.step", attributes, async (span) => {
      span.addEvent("attempt", { "tessera.attempt": attempt });
      await executeStep(app, payload, attempt, logger);
    });
  },
  async onFinalFailure(payload, error, app) {
    await failStep(app, payload, error);
  },
};
