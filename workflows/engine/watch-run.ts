import type { AppContext } from "../../services/core/app-context.ts";
import type { Run } from "../../services/core/database.ts";
import type { RunEvent } from "../../services/queue/event-bus.ts";
import { RunEventType, TERMINAL_RUN_STATUSES } from "./run-events.ts";

/** Pub/sub can miss an event published just before we subscribed; the database is the backstop. */
const RECHECK_MS = 2000;

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

const isEnd = (event: RunEvent) => event.type === RunEventType.RUN_STATUS && TERMINAL_RUN_STATUSES.has(event.status ?? "");

/** Yields the run's status now, then every event, and ends when the run does. */
export async function* watchRun(app: AppContext, runId: string): AsyncGenerator<RunEvent> {
  const events = app.events.subscribe("run", runId)[Symbol.asyncIterator]();
  let pending = events.next(); // subscribes before the row is read
  try {
    let last = await app.db.run.findUniqueOrThrow({ where: { id: runId } });
    yield statusEvent(last);
    if (TERMINAL_RUN_STATUSES.has(last.status)) return;
    while (true) {
      let timer: NodeJS.Timeout | undefined;
      const recheck = new Promise<"recheck">((resolve) => (timer = setTimeout(() => resolve("recheck"), RECHECK_MS)));
      const next = await Promise.race([pending, recheck]);
      clearTimeout(timer);
      if (next === "recheck") {
        const row = await app.db.run.findUniqueOrThrow({ where: { id: runId } });
        if (row.status !== last.status) {
          last = row;
          yield statusEvent(row);
          if (TERMINAL_RUN_STATUSES.has(row.status)) return;
        }
        continue;
      }
      if (next.done) return;
      pending = events.next();
      yield next.value;
      if (isEnd(next.value)) return;
    }
  } finally {
    await events.return?.();
  }
}
