import { databaseUnavailable } from "../../core/database-errors.ts";
import { toErrorRecord } from "../../core/errors.ts";
import type { NextStep } from "../../../workflows/engine/run-coordinator.ts";
import { executeStep, failStep, type StepJob } from "../../../workflows/engine/step-executor.ts";
import { inSpan } from "../../observability/tracing.ts";
import type { JobHandler, JobHandlerContext } from "../job-handler.ts";

/**
 * How long a job goes on running the steps its steps ready (a chain, one after another) before it leaves the next
 * one to a job of its own: bounds how long a worker's drain waits for it.
 */
const RUN_HERE_MS = 1_000;

/** Runs one workflow step; retries and backoff are the step's own, set on its BullMQ job. */
export const workflowStepHandler: JobHandler<"workflow-step"> = {
  tracked: false,
  async run(payload, context) {
    const started = performance.now();
    const runHere = () => performance.now() - started < RUN_HERE_MS;
    let next = await runStep(payload, context.attempt, context, runHere());
    // The step the last one readied, which it alone could ready, runs here without a job round trip: its QUEUED row
    // was committed first, so if this worker dies, this job's re-delivery (its step is done) gives it a job.
    while (next) {
      const step: NextStep = next;
      next = await runStep(step, 1, context, runHere()).catch((error: unknown) => failedHere(step, error, context));
    }
  },
  async onFinalFailure(payload, error, app) {
    await failStep(app, payload, error);
  },
};

function runStep(payload: StepJob, attempt: number, { app, logger }: JobHandlerContext, runHere: boolean) {
  // A span per attempt of a step (named by the step once the engine knows it): map items and an agent's
  // tool calls are jobs queued inside it, so their spans are its children (services/observability).
  const attributes = { "tessera.workflow.run_id": payload.runId, "tessera.workflow.step_run_id": payload.stepRunId, "tessera.project.id": payload.projectId, "tessera.attempt": attempt };
  return inSpan("workflow.step", attributes, async (span) => {
    span.addEvent("attempt", { "tessera.attempt": attempt });
    return executeStep(app, payload, attempt, logger, { runHere });
  });
}

/**
 * A step run here failed its one attempt: as its own job's last failure is handled. Losing PostgreSQL is not the
 * step's failure: its row stays open and the reconciler runs it again, as after an outage.
 */
async function failedHere(step: NextStep, error: unknown, { app, logger }: JobHandlerContext): Promise<undefined> {
  const record = toErrorRecord(error, `step ${step.stepRunId} of run ${step.runId}`);
  logger.warn({ err: error, code: record.code, runId: step.runId, stepRunId: step.stepRunId }, "a step run after the one before it failed");
  if (!databaseUnavailable(error)) await failStep(app, step, record);
  return undefined;
}
