import type { Job as BullJob } from "bullmq";
import type { AppContext } from "../app/app-context.ts";
import { ErrorCode, TesseraError, type ErrorRecord } from "../core/errors.ts";
import { jobPayloads, type JobPayload, type QueueName } from "../queue/job-payloads.ts";
import type { JobHandler } from "./job-handler.ts";
import { JobTracker } from "./job-tracker.ts";

/**
 * Errors the pool's processor has already dealt with (rows marked, onFinalFailure called).
 * Any other failure BullMQ reports was decided by BullMQ itself without running the
 * processor: a job that stalled more than `maxStalledCount` times is failed by the next
 * worker that takes it ("job stalled more than allowable limit"), and nothing else would
 * mark its rows.
 */
export class LostJobs {
  private readonly handled = new WeakSet<object>();

  /** The processor marks each error it throws after handling the failure itself. */
  handledBy<E>(error: E): E {
    if (typeof error === "object" && error !== null) this.handled.add(error);
    return error;
  }

  isHandled(error: unknown): boolean {
    return typeof error === "object" && error !== null && this.handled.has(error);
  }
}

/**
 * Marks the rows of a job BullMQ failed on its own, as the handler's own final failure would:
 * the Job row FAILED with WORKER_LOST (a row already finished keeps its state), and the
 * handler's `onFinalFailure` (the asset FAILED, the workflow step FAILED and its run advanced).
 */
export async function reconcileLostJob(app: AppContext, queue: QueueName, handler: JobHandler<QueueName>, job: BullJob, reason: string) {
  const parsed = jobPayloads[queue].safeParse(job.data);
  if (!parsed.success) return; // the processor refused it already, and logged why
  const payload = parsed.data;
  const stalls = job.stalledCounter;
  const error = new TesseraError(
    ErrorCode.WORKER_LOST,
    stalls > 0
      ? `the worker running it stopped ${stalls} times (killed, out of memory or replaced by a deploy); it is not run again`
      : `the queue gave up on it without running it (${reason})`,
    { stalls, reason },
  ).toRecord();
  app.logger.child({ queue, jobId: payload.jobId }).error({ stalls, reason }, "job failed by the queue itself: marking its rows");
  await markLostJobRows(app, queue, handler, payload, error);
}

/**
 * The handler's final failure for a job no processor will finish (failed by the queue itself, or a row the
 * reconciler found without a job): `onFinalFailure`, then the Job row FAILED; a row already finished keeps its state.
 */
export async function markLostJobRows<Q extends QueueName>(app: AppContext, queue: Q, handler: JobHandler<Q>, payload: JobPayload<Q>, error: ErrorRecord) {
  if (handler.tracked !== false) {
    const row = await app.db.job.findUnique({ where: { id: payload.jobId }, select: { status: true } });
    if (!row || !["QUEUED", "RUNNING"].includes(row.status)) return;
  }
  // As in the processor: what the handler marks comes first, the job's FAILED last.
  try {
    await handler.onFinalFailure?.(payload as never, error, app);
  } finally {
    if (handler.tracked !== false) await new JobTracker(app, payload.jobId).failed(error, true);
  }
}
