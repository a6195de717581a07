import type { AppContext } from "../app/app-context.ts";
import type { Job } from "../core/database.ts";
import type { JobEvent } from "../queue/event-bus.ts";
import { watchEvents } from "../queue/watch-events.ts";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

function eventFromRow(job: Job): JobEvent {
  return {
    jobId: job.id,
    status: job.status,
    progress: job.progress,
    error: (job.error as JobEvent["error"]) ?? null,
    at: job.updatedAt.toISOString(),
  };
}

/** Yields the job's state now, then each event, and ends when the job does. */
export function watchJob(app: AppContext, jobId: string): AsyncGenerator<JobEvent> {
  return watchEvents({
    events: app.events.subscribe("job", jobId)[Symbol.asyncIterator](),
    readRow: () => app.db.job.findUniqueOrThrow({ where: { id: jobId } }),
    rowEvent: eventFromRow,
    changed: (previous, next) => previous.status !== next.status || previous.progress !== next.progress,
    rowIsFinal: (job) => TERMINAL.has(job.status),
    eventIsFinal: (event) => TERMINAL.has(event.status),
  });
}
