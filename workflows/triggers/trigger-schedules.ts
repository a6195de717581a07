import type { AppContext } from "../../services/app/app-context.ts";
import type { WorkflowTrigger } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { withTimeout } from "../../services/core/with-timeout.ts";
import { jobPayloads } from "../../services/queue/job-payloads.ts";

/**
 * A `schedule` trigger is a BullMQ job scheduler on the `workflow-trigger`
 * queue, not a timer of ours: the schedule lives in Redis, so it survives
 * restarts, and however many workers run, each firing is one job.
 *
 * Missed firings (no worker running at the time) are BullMQ's behaviour: a
 * scheduler keeps one delayed job for its next time; when a worker comes
 * back, that overdue job runs at once (one catch-up run, however many times
 * were missed), and the next time is reckoned from then. Nothing piles up.
 */
export function schedulerId(triggerId: string): string {
  return `trigger_${triggerId}`;
}

async function onQueue<T>(app: AppContext, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(call(), app.config.QUEUE_ADD_TIMEOUT_MS, what);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `the job queue is unavailable (${reason}); retry later`);
  }
}

/** Creates or updates the trigger's job scheduler (its cron pattern and time zone). */
export async function armSchedule(app: AppContext, trigger: Pick<WorkflowTrigger, "id" | "projectId" | "cron" | "timezone">) {
  if (!trigger.cron) throw new TesseraError(ErrorCode.INTERNAL, `schedule trigger ${trigger.id} has no cron pattern`);
  const id = schedulerId(trigger.id);
  const data = jobPayloads["workflow-trigger"].parse({ jobId: id, triggerId: trigger.id, projectId: trigger.projectId });
  await onQueue(app, "arming the schedule", () =>
    app.queues.queue("workflow-trigger").upsertJobScheduler(
      id,
      { pattern: trigger.cron!, tz: trigger.timezone ?? "UTC" },
      { name: "workflow-trigger", data, opts: { attempts: 3, backoff: { type: "exponential", delay: 1000 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } },
    ),
  );
}

/** Removes the job scheduler and its next job; the trigger row is the caller's. */
export async function disarmSchedule(app: AppContext, triggerId: string) {
  await onQueue(app, "removing the schedule", () => app.queues.queue("workflow-trigger").removeJobScheduler(schedulerId(triggerId)));
}

/** When the scheduler fires next, or null when it has none (paused, or not armed). */
export async function nextFireAt(app: AppContext, triggerId: string): Promise<Date | null> {
  const scheduler = await app.queues.queue("workflow-trigger").getJobScheduler(schedulerId(triggerId)).catch(() => undefined);
  return scheduler?.next ? new Date(scheduler.next) : null;
}
