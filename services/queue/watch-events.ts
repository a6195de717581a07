import { Repeater } from "graphql-yoga";

export type WatchOptions<Row, Event> = {
  /** The live events; subscribed (its first `next()`) before the row is first read. */
  events: AsyncIterator<Event>;
  /** Settles once pub/sub has confirmed the subscription, so the first read misses nothing published after it. */
  subscribed?: (() => Promise<unknown>) | undefined;
  readRow(): Promise<Row>;
  /** The process's shared backstop (see shared-recheck.ts): calls back with re-read rows until unwatched. */
  recheck(onRow: (row: Row) => void): () => void;
  rowEvent(row: Row): Event;
  /** Whether a re-read row says something the last one did not. */
  changed(previous: Row, next: Row): boolean;
  rowIsFinal(row: Row): boolean;
  eventIsFinal(event: Event): boolean;
};

/**
 * Yields the state stored now, then each live event, and ends with the thing
 * watched (a job, a run). The database is read once here; after that, pub/sub
 * is the source of events and the shared recheck the backstop for any that
 * were lost, so a missed event delays the stream but never stalls it.
 *
 * A Repeater rather than an async generator: a client that goes away ends it
 * at once (`return()`), even while it waits for an event that may never come.
 */
export function watchEvents<Row, Event>(options: WatchOptions<Row, Event>): AsyncIterableIterator<Event> {
  return new Repeater<Event>(async (push, stop) => {
    const { events } = options;
    let unwatch = () => {};
    let ended = false;
    const stopped = stop.then(() => {
      ended = true;
      return "stopped" as const;
    });
    try {
      let pending = events.next(); // starts the subscription before the row is read
      await options.subscribed?.();
      let last: Row = await options.readRow();
      await push(options.rowEvent(last));
      if (options.rowIsFinal(last)) return;
      unwatch = options.recheck((row: Row) => {
        if (ended || !options.changed(last, row)) return;
        last = row;
        void push(options.rowEvent(row));
        if (options.rowIsFinal(row)) stop();
      });
      while (!ended) {
        const next = await Promise.race([pending, stopped]);
        if (next === "stopped" || next.done) return;
        pending = events.next();
        await push(next.value);
        if (options.eventIsFinal(next.value)) return;
      }
    } catch (error) {
      stop(error);
    } finally {
      unwatch();
      stop();
      await events.return?.();
    }
  });
}
