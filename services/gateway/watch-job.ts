import type { AppContext } from "../app/app-context.ts";
import { sql, type Database, type Job } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { JobEvent } from "../queue/event-bus.ts";
import { SharedRecheck } from "../queue/shared-recheck.ts";
import { watchEvents } from "../queue/watch-events.ts";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** What a watch reads of the row: not its input or output (a prompt, a generated text), which no event carries. */
export type WatchedJob = Pick<Job, "id" | "status" | "progress" | "error" | "updatedAt">;

function eventFromRow(job: WatchedJob): JobEvent {
  return {
    jobId: job.id,
    status: job.status,
    progress: job.progress,
    error: (job.error as JobEvent["error"]) ?? null,
    at: job.updatedAt.toISOString(),
  };
}

/** The columns a watch reads, for the statements that read WatchedJob rows. */
export const WATCHED_JOB_COLUMNS = `id, status, progress, error, "updatedAt"`;

/** A named statement: prepared once per pooled connection, as every subscription sends it. */
const WATCHED_PROJECT_JOB = `SELECT ${WATCHED_JOB_COLUMNS} FROM "Job" WHERE id = $1 AND "projectId" = $2`;

/** One backstop per database client, that is per process: all watched jobs in one query. */
const rechecks = new WeakMap<Database, SharedRecheck<WatchedJob>>();
function recheckOf(app: Pick<AppContext, "db" | "logger">): SharedRecheck<WatchedJob> {
  let recheck = rechecks.get(app.db);
  if (!recheck) {
    recheck = new SharedRecheck<WatchedJob>(
      (ids) => app.db.job.findMany({ where: { id: { in: ids } }, select: { id: true, status: true, progress: true, error: true, updatedAt: true } }),
      undefined,
      (error) => app.logger.warn({ err: error }, "re-reading watched jobs failed"),
    );
    rechecks.set(app.db, recheck);
  }
  return recheck;
}

/** How many jobs this process's watches recheck now (for tests: a watch that ended left none). */
export function watchedJobCount(app: Pick<AppContext, "db" | "logger">): number {
  return rechecks.get(app.db)?.size ?? 0;
}

/**
 * Yields the job's state now, then each event, and ends when the job does. With `projectId`, a job of another
 * project (or none) ends it with NOT_FOUND at its first read: the read is the project check, no statement besides.
 */
export function watchJob(app: AppContext, jobId: string, projectId?: string): AsyncIterableIterator<JobEvent> {
  return watchJobReading(app, jobId, {
    subscribed: () => app.events.whenSubscribed("job", jobId),
    // On node-postgres: every jobEvents subscription reads its job's row, and through Prisma (even raw) a read costs 1-3 ms of the event loop.
    readRow: async () => {
      const [job] =
        projectId === undefined
          ? await sql<WatchedJob>(app.db, `SELECT ${WATCHED_JOB_COLUMNS} FROM "Job" WHERE id = $1`, [jobId])
          : await sql<WatchedJob>(app.db, WATCHED_PROJECT_JOB, [jobId, projectId], "tessera_watched_project_job");
      if (!job) throw new TesseraError(ErrorCode.NOT_FOUND, projectId === undefined ? `no job ${jobId}` : `no job ${jobId} in this project`);
      return job;
    },
  });
}

/**
 * One job's watch with its first read given: `subscribed` settles when its row may be read without missing an
 * event, `readRow` reads it (watchJob's own statement, or watchJobs' one statement for all its jobs).
 */
export function watchJobReading(
  app: AppContext,
  jobId: string,
  first: { subscribed: () => Promise<unknown>; readRow: () => Promise<WatchedJob> },
): AsyncIterableIterator<JobEvent> {
  return watchEvents({
    events: app.events.subscribe("job", jobId)[Symbol.asyncIterator](),
    subscribed: first.subscribed,
    readRow: first.readRow,
    recheck: (onRow) => recheckOf(app).watch(jobId, onRow),
    rowEvent: eventFromRow,
    changed: (previous, next) => previous.status !== next.status || previous.progress !== next.progress,
    rowIsFinal: (job) => TERMINAL.has(job.status),
    eventIsFinal: (event) => TERMINAL.has(event.status),
  });
}

/**
 * The same iterator, with its first result (already read) given back first. Not an async generator: a
 * generator's `return()` waits for a pending `next()`, and a client that goes away must end the watch at once.
 */
export function startingWith<T>(first: IteratorResult<T>, rest: AsyncIterableIterator<T>): AsyncIterableIterator<T> {
  let given = false;
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      if (given) return rest.next();
      given = true;
      return Promise.resolve(first);
    },
    return: (value?: unknown) => rest.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
    throw: (error?: unknown) => rest.throw?.(error) ?? Promise.reject(error),
  };
}
