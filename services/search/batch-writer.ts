/**
 * Coalesces concurrent writes into batches: every caller's items join one
 * queue, at most `maxInFlight` batches of up to `batchSize` items are sent at
 * once, and each caller's promise settles when all of its items are stored.
 * While the store is busy, items from several callers (several ingest jobs)
 * pile up and leave together, so many small writes become a few large ones;
 * and a caller waits for its own items, which holds a fast producer back
 * (backpressure) instead of buffering without bound.
 *
 * A caller may give up (its signal aborts: an ingest whose retry budget ran out during an outage). Its queued
 * items are dropped, and a batch that only given-up callers wait for is let go of: its slot is free at once and
 * `send` is told through its signal. Otherwise a store that hangs (a client retrying for half a minute) would keep
 * the slots, and every later write, even once the store answers again, would wait behind writes nobody awaits.
 */
export class BatchWriter<T> {
  private readonly queue: Array<Entry<T>> = [];
  private readonly inFlight = new Set<Batch<T>>();

  constructor(
    private readonly send: (items: T[], signal: AbortSignal) => Promise<void>,
    private readonly batchSize: number,
    private readonly maxInFlight: number,
  ) {}

  write(items: T[], signal?: AbortSignal): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const caller: Caller = { remaining: items.length, resolve, reject, gaveUp: false };
      for (const item of items) this.queue.push({ item, caller });
      signal?.addEventListener("abort", () => this.giveUp(caller, signal.reason), { once: true });
      this.pump();
    });
  }

  private pump() {
    while (this.inFlight.size < this.maxInFlight && this.queue.length > 0) {
      const batch: Batch<T> = { entries: this.queue.splice(0, this.batchSize), controller: new AbortController() };
      this.inFlight.add(batch);
      this.send(
        batch.entries.map((entry) => entry.item),
        batch.controller.signal,
      ).then(
        () => this.settle(batch),
        (error: unknown) => this.settle(batch, error),
      );
    }
  }

  private settle(batch: Batch<T>, error?: unknown) {
    if (!this.inFlight.delete(batch)) return; // let go of already: every caller of it gave up
    for (const { caller } of batch.entries) {
      if (caller.gaveUp) continue;
      if (error !== undefined && caller.error === undefined) caller.error = error;
      if (--caller.remaining === 0) {
        if (caller.error !== undefined) caller.reject(caller.error);
        else caller.resolve();
      }
    }
    this.pump();
  }

  private giveUp(caller: Caller, reason: unknown) {
    if (caller.gaveUp || caller.remaining === 0) return;
    caller.gaveUp = true;
    caller.reject(reason);
    for (let index = this.queue.length - 1; index >= 0; index--) {
      if (this.queue[index]!.caller === caller) this.queue.splice(index, 1);
    }
    for (const batch of this.inFlight) {
      if (batch.entries.every((entry) => entry.caller.gaveUp)) {
        this.inFlight.delete(batch);
        batch.controller.abort(reason);
      }
    }
    this.pump();
  }
}

type Caller = { remaining: number; error?: unknown; gaveUp: boolean; resolve(): void; reject(error: unknown): void };
type Entry<T> = { item: T; caller: Caller };
type Batch<T> = { entries: Array<Entry<T>>; controller: AbortController };
