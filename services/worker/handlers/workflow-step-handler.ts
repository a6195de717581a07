import { executeStep, failStep } from "../../../workflows/engine/step-executor.ts";
import type { JobHandler } from "../job-handler.ts";

/** Runs one workflow step; retries and backoff are the step's own, set on its BullMQ job. */
export const workflowStepHandler: JobHandler<"workflow-step"> = {
  tracked: false,
  async run(payload, { app, attempt, logger }) {
    await executeStep(app, payload, attempt, logger);
  },
  async onFinalFailure(payload, error, app) {
    await failStep(app, payload, error);
  },
};
