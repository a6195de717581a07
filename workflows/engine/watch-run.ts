import type { AppContext } from "../../services/app/app-context.ts";
import type { Run } from "../../services/core/database.ts";
import type { RunEvent } from "../../services/queue/event-bus.ts";
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

/** Yields the run's status now, then every event, and ends when the run does. */
export function watchRun(app: AppContext, runId: string): AsyncGenerator<RunEvent> {
  return watchEvents({
    events: app.events.subscribe("run", runId)[Symbol.asyncIterator](),
    readRow: () => app.db.run.findUniqueOrThrow({ where: { id: runId } }),
    rowEvent: statusEvent,
    changed: (previous, next) => previous.status !== next.status,
    rowIsFinal: (run) => TERMINAL_RUN_STATUSES.has(run.status),
    eventIsFinal: (event) => event.type === RunEventType.RUN_STATUS && TERMINAL_RUN_STATUSES.has(event.status ?? ""),
  });
}
