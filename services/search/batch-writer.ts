/**
 * Coalesces concurrent writes into batches: every caller's items join one
 * queue, at most `maxInFlight` batches of up to `batchSize` items are sent at
 * once, and each caller's promise settles when all of its items are stored.
 * While the store is busy, items from several callers (several ingest jobs)
 * pile up and leave together, so many small writes become a few large ones;
 * and a caller waits for its own items, which holds a fast producer back
 * (backpressure) instead of buffering without bound.
 */
export class BatchWriter<T> {
  private readonly queue: Array<{ item: T; caller: Caller }> = [];
  private inFlight = 0;

  constructor(
    private readonly send: (items: T[]) => Promise<void>,
    private readonly batchSize: number,
    private readonly maxInFlight: number,
  ) {}

  write(items: T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const caller: Caller = { remaining: items.length, resolve, reject };
      for (const item of items) this.queue.push({ item, caller });
      this.pump();
    });
  }

  private pump() {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.batchSize);
      this.inFlight++;
      this.send(batch.map((entry) => entry.item)).then(
        () => this.settle(batch),
        (error: unknown) => this.settle(batch, error),
      );
    }
  }

  private settle(batch: Array<{ caller: Caller }>, error?: unknown) {
    this.inFlight--;
    for (const { caller } of batch) {
      if (error !== undefined && caller.error === undefined) caller.error = error;
      if (--caller.remaining === 0) {
        if (caller.error !== undefined) caller.reject(caller.error);
        else caller.resolve();
      }
    }
    this.pump();
  }
}

type Caller = { remaining: number; error?: unknown; resolve(): void; reject(error: unknown): void };
