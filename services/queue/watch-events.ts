/** Pub/sub can miss an event published just before we subscribed; the database is the backstop. */
const RECHECK_MS = 2000;

export type WatchOptions<Row, Event> = {
  /** The live events; subscribed before the row is first read. */
  events: AsyncIterator<Event>;
  readRow(): Promise<Row>;
  rowEvent(row: Row): Event;
  /** Whether a re-read row says something the last one did not. */
  changed(previous: Row, next: Row): boolean;
  rowIsFinal(row: Row): boolean;
  eventIsFinal(event: Event): boolean;
};

/**
 * Yields the state stored now, then each live event, and ends with the thing
 * watched (a job, a run). Every RECHECK_MS without an event the row is read
 * again, so a missed event delays the stream but never stalls it.
 */
export async function* watchEvents<Row, Event>(options: WatchOptions<Row, Event>): AsyncGenerator<Event> {
  const { events } = options;
  let pending = events.next(); // starts the subscription before the row is read
  try {
    let last = await options.readRow();
    yield options.rowEvent(last);
    if (options.rowIsFinal(last)) return;
    while (true) {
      let timer: NodeJS.Timeout | undefined;
      const recheck = new Promise<"recheck">((resolve) => (timer = setTimeout(() => resolve("recheck"), RECHECK_MS)));
      const next = await Promise.race([pending, recheck]);
      clearTimeout(timer);
      if (next === "recheck") {
        const row = await options.readRow();
        if (options.changed(last, row)) {
          last = row;
          yield options.rowEvent(row);
          if (options.rowIsFinal(row)) return;
        }
        continue;
      }
      if (next.done) return;
      pending = events.next();
      yield next.value;
      if (options.eventIsFinal(next.value)) return;
    }
  } finally {
    await events.return?.();
  }
}
