import { Repeater } from "graphql-yoga";
import type { AppContext } from "../app/app-context.ts";
import { sql } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { JobEvent } from "../queue/event-bus.ts";
import { WATCHED_JOB_COLUMNS, watchJobReading, type WatchedJob } from "./watch-job.ts";

/**
 * Most distinct jobs one `jobsEvents` stream follows. Each is a bus channel and a place in the shared recheck for as
 * long as it runs; a client with more opens another stream for the rest.
 */
export const MAX_WATCHED_JOBS = 100;

/** A named statement, as watchJob's: the first states of all the stream's jobs, of the caller's project only. */
const WATCHED_PROJECT_JOBS = `SELECT ${WATCHED_JOB_COLUMNS} FROM "Job" WHERE id = ANY($1::text[]) AND "projectId" = $2`;

/** The ids to follow, each once; BAD_USER_INPUT for none, or for more than MAX_WATCHED_JOBS. */
export function jobIdsToWatch(ids: readonly string[]): string[] {
  const distinct = [...new Set(ids)];
  if (distinct.length === 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "give at least one job id");
  if (distinct.length > MAX_WATCHED_JOBS) {
    throw new TesseraError(
      ErrorCode.BAD_USER_INPUT,
      `one stream follows at most ${MAX_WATCHED_JOBS} jobs (MAX_WATCHED_JOBS); ${distinct.length} were given: open another stream for the rest`,
      { limit: "MAX_WATCHED_JOBS", value: MAX_WATCHED_JOBS, given: distinct.length },
    );
  }
  return distinct;
}

/**
 * Each job's state now (in the order of `ids`, a repeated id once), then every event of any of them, ending when
 * all have finished. One statement reads all the first states, once every job's channel is subscribed; a job
 * that is not the project's fails the whole watch with NOT_FOUND before anything is yielded, as watchJob does.
 * Each job is otherwise watched as watchJob watches it (watchJobReading): its bus channel, and the process's
 * shared recheck as the backstop, both released as soon as that job ends.
 */
export function watchJobs(app: AppContext, jobIds: readonly string[], projectId: string): AsyncIterableIterator<JobEvent> {
  const ids = jobIdsToWatch(jobIds);
  // Every watch subscribes on its first next(), then waits here: the one read comes after the last subscription is confirmed.
  let unsubscribed = ids.length;
  let allStarted!: () => void;
  const allSubscribed = new Promise<void>((resolve) => (allStarted = resolve)).then(() =>
    Promise.all(ids.map((id) => app.events.whenSubscribed("job", id))),
  );
  let rows: Promise<Map<string, WatchedJob>> | undefined;
  const watches = ids.map((id) =>
    watchJobReading(app, id, {
      subscribed: () => {
        if (--unsubscribed === 0) allStarted();
        return allSubscribed;
      },
      readRow: async () => (await (rows ??= readProjectJobs(app, ids, projectId))).get(id)!,
    }),
  );
  return merged(watches);
}

async function readProjectJobs(app: AppContext, ids: string[], projectId: string): Promise<Map<string, WatchedJob>> {
  const found = await sql<WatchedJob>(app.db, WATCHED_PROJECT_JOBS, [ids, projectId], "tessera_watched_project_jobs");
  const rows = new Map(found.map((job) => [job.id, job]));
  const missing = ids.filter((id) => !rows.has(id));
  // The words jobEvents uses: nothing says whether a missing job is another project's or none at all.
  if (missing.length === 1) throw new TesseraError(ErrorCode.NOT_FOUND, `no job ${missing[0]} in this project`);
  if (missing.length > 1) throw new TesseraError(ErrorCode.NOT_FOUND, `no jobs ${missing.join(", ")} in this project`);
  return rows;
}

/**
 * The first result of every source (in order; one failing fails the whole, before anything is given), then each
 * source's results as they come, until all end. A client that goes away (`return()`) ends every source at once.
 */
function merged<T>(sources: AsyncIterableIterator<T>[]): AsyncIterableIterator<T> {
  return new Repeater<T>(async (push, stop) => {
    // Ending a source settles its pending next(), so the loops below end too.
    const released = stop.then(() => Promise.all(sources.map((source) => source.return?.())));
    try {
      const firsts = await Promise.all(sources.map((source) => source.next()));
      for (const first of firsts) if (!first.done) await push(first.value);
      await Promise.all(
        sources.map(async (source, index) => {
          if (firsts[index]!.done) return;
          for (let next = await source.next(); !next.done; next = await source.next()) await push(next.value);
        }),
      );
    } catch (error) {
      stop(error);
    } finally {
      stop();
      await released;
    }
  });
}
