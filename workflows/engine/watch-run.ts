import type { AppContext } from "../../services/app/app-context.ts";
import type { Database, Run } from "../../services/core/database.ts";
import type { RunEvent } from "../../services/queue/event-bus.ts";
import { SharedRecheck } from "../../services/queue/shared-recheck.ts";
import { watchEvents } from "../../services/queue/watch-events.ts";
import { RunEventType, TERMINAL_RUN_STATUSES } from "./run-events.ts";

function statusEvent(run: Run): RunEvent {
  return {
    runId: run.id,
    type: RunEventType.RUN_STATUS,
    status: run.status,
    output: run.output ?? undefined,
    error: (run.error as RunEvent["error"]) ?? null,
    at: (run.finishedAt ?? run.startedAt ?? run.createdAt).toISOString(),
  };
}

/** One backstop per database client, that is per process: all watched runs in one query. */
const rechecks = new WeakMap<Database, SharedRecheck<Run>>();
function recheckOf(app: Pick<AppContext, "db" | "logger">): SharedRecheck<Run> {
  let recheck = rechecks.get(app.db);
  if (!recheck) {
    recheck = new SharedRecheck<Run>(
      (ids) => app.db.run.findMany({ where: { id: { in: ids } } }),
      undefined,
      (error) => app.logger.warn({ err: error }, "re-reading watched runs failed"),
    );
    rechecks.set(app.db, recheck);
  }
  return recheck;
}

/** Yields the run's status now, then every event, and ends when the run does. */
export function watchRun(app: AppContext, runId: string): AsyncIterableIterator<RunEvent> {
  return watchEvents({
    events: app.events.subscribe("run", runId)[Symbol.asyncIterator](),
    subscribed: () => app.events.whenSubscribed("run", runId),
    readRow: () => app.db.run.findUniqueOrThrow({ where: { id: runId } }),
    recheck: (onRow) => recheckOf(app).watch(runId, onRow),
    rowEvent: statusEvent,
    changed: (previous, next) => previous.status !== next.status,
    rowIsFinal: (run) => TERMINAL_RUN_STATUSES.has(run.status),
    eventIsFinal: (event) => event.type === RunEventType.RUN_STATUS && TERMINAL_RUN_STATUSES.has(event.status ?? ""),
  });
}
