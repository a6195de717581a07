import type { AppContext } from "../core/app-context.ts";
import type { Job } from "../core/database.ts";
import type { JobEvent } from "../queue/event-bus.ts";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
/** Pub/sub can miss an event published just before we subscribed; the database is the backstop. */
const RECHECK_MS = 2000;

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
export async function* watchJob(app: AppContext, jobId: string): AsyncGenerator<JobEvent> {
  const events = app.events.subscribe("job", jobId)[Symbol.asyncIterator]();
  let pending = events.next(); // starts the Redis subscription before we read the row
  try {
    let last = await app.db.job.findUniqueOrThrow({ where: { id: jobId } });
    yield eventFromRow(last);
    if (TERMINAL.has(last.status)) return;
    while (true) {
      let timer: NodeJS.Timeout | undefined;
      const recheck = new Promise<"recheck">((resolve) => (timer = setTimeout(() => resolve("recheck"), RECHECK_MS)));
      const next = await Promise.race([pending, recheck]);
      clearTimeout(timer);
      if (next === "recheck") {
        const row = await app.db.job.findUniqueOrThrow({ where: { id: jobId } });
        if (row.status !== last.status || row.progress !== last.progress) {
          last = row;
          yield eventFromRow(row);
          if (TERMINAL.has(row.status)) return;
        }
        continue;
      }
      if (next.done) return;
      pending = events.next();
      yield next.value;
      if (TERMINAL.has(next.value.status)) return;
    }
  } finally {
    await events.return?.();
  }
}
