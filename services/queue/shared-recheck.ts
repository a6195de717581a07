/**
 * The database backstop of every event watch in one process: one timer, and
 * one query per kind of row for all the ids being watched, instead of a timer
 * and a query per subscription.
 *
 * Why a backstop at all, and why this one: a watch subscribes to pub/sub and
 * waits for Redis to confirm before it reads its row, so nothing published
 * after that read is missed while the subscriber connection stays up. What
 * pub/sub cannot promise is the rest: events published while the subscriber
 * reconnects, or never published (a worker that died between its database
 * write and its publish). Redis streams would close the first gap but not the
 * second; the row in PostgreSQL is the truth for both, so it is re-read, for
 * all watches together, every `intervalMs`. A lost event is late by at most
 * that; the database sees one query per interval however many clients watch.
 */
export const RECHECK_MS = 5000;
/** Ids per query, so a very busy gateway sends several moderate `IN` lists rather than one huge one. */
const IDS_PER_QUERY = 1000;

export class SharedRecheck<Row extends { id: string }> {
  private readonly watchers = new Map<string, Set<(row: Row) => void>>();
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly readRows: (ids: string[]) => Promise<Row[]>,
    private readonly intervalMs = RECHECK_MS,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  /** Calls `onRow` with the stored row of `id` on every recheck, until the returned function is called. */
  watch(id: string, onRow: (row: Row) => void): () => void {
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(onRow);
    if (!this.timer) {
      this.timer = setInterval(() => void this.recheck(), this.intervalMs);
      this.timer.unref(); // an idle watch never keeps a process alive
    }
    return () => {
      set.delete(onRow);
      if (set.size === 0) this.watchers.delete(id);
      if (this.watchers.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** How many rows are watched (for tests and metrics). */
  get size() {
    return this.watchers.size;
  }

  private async recheck() {
    if (this.running) return; // a slow database skips a beat rather than piling queries up
    this.running = true;
    try {
      const ids = [...this.watchers.keys()];
      for (let start = 0; start < ids.length; start += IDS_PER_QUERY) {
        for (const row of await this.readRows(ids.slice(start, start + IDS_PER_QUERY))) {
          for (const onRow of this.watchers.get(row.id) ?? []) onRow(row);
        }
      }
    } catch (error) {
      this.onError(error); // the next beat tries again; live events keep flowing meanwhile
    } finally {
      this.running = false;
    }
  }
}
