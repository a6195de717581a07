export type BatchLimits = {
  /** Most items in one batch. */
  maxBatchSize: number;
  /** Longest an item waits for company before its batch runs anyway. */
  maxWaitMs: number;
  /** For text: most tokens (summed `cost`) in one batch. */
  maxCost?: number;
  cost?: (item: unknown) => number;
  /**
   * For a runner that queues a batch behind the one it computes (the inference thread): the next batch is handed
   * over before the running one ends, once it holds as many items as the running one (what arrives while a batch
   * runs is about one batch), so the model starts it without waiting for this thread to hear the result and hand
   * it over. At most two batches are out at once; a queue that has not grown that big goes when the running one ends.
   */
  handOverAhead?: boolean;
};

type Pending<I, O> = { item: I; cost: number; resolve(output: O): void; reject(error: unknown): void };

/**
 * Groups concurrent requests for one model into batches: a batch runs when it
 * is full (items or token budget) or its oldest item has waited maxWaitMs,
 * whichever comes first. One batch runs at a time (handOverAhead: the next is
 * handed over early); the next one forms meanwhile. Each caller gets back
 * exactly its own outputs, or the batch's error.
 */
export class DynamicBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Sizes of the batches handed over and not yet answered, oldest first. */
  private running: number[] = [];
  /** Sizes of the batches run so far; benches and tests read it. */
  readonly batchSizes: number[] = [];

  constructor(
    private limits: BatchLimits,
    private runBatch: (items: I[]) => Promise<O[]>,
  ) {}

  run(items: I[]): Promise<O[]> {
    return Promise.all(items.map((item) => this.runOne(item)));
  }

  runOne(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const cost = this.limits.cost ? this.limits.cost(item) : 1;
      this.queue.push({ item, cost, resolve, reject });
      this.schedule();
    });
  }

  private schedule() {
    if (this.queue.length === 0) return;
    if (this.running.length) {
      if (this.mayHandOverAhead()) this.flush();
      return;
    }
    if (this.full() || this.limits.maxWaitMs <= 0) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.limits.maxWaitMs);
    }
  }

  /** A second batch goes ahead only when it is as big as the one running (or full), never a third. */
  private mayHandOverAhead() {
    if (!this.limits.handOverAhead || this.running.length !== 1) return false;
    return this.full() || this.queue.length >= this.running[0]!;
  }

  private full() {
    if (this.queue.length >= this.limits.maxBatchSize) return true;
    if (this.limits.maxCost === undefined) return false;
    return this.queue.reduce((sum, pending) => sum + pending.cost, 0) >= this.limits.maxCost;
  }

  private takeBatch(): Pending<I, O>[] {
    const batch: Pending<I, O>[] = [];
    let cost = 0;
    while (this.queue.length && batch.length < this.limits.maxBatchSize) {
      const next = this.queue[0]!;
      // A single item over the budget still runs, alone.
      if (this.limits.maxCost !== undefined && batch.length > 0 && cost + next.cost > this.limits.maxCost) break;
      batch.push(this.queue.shift()!);
      cost += next.cost;
    }
    return batch;
  }

  private flush() {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0 || (this.running.length && !this.mayHandOverAhead())) return;
    const batch = this.takeBatch();
    this.running.push(batch.length);
    this.batchSizes.push(batch.length);
    void this.execute(batch).finally(() => {
      this.running.shift();
      // Whatever queued while this batch ran has waited long enough: run it now (or, with a batch handed over
      // ahead still out, once it is as big as that one, or when that one ends).
      if (this.queue.length) this.flush();
    });
  }

  private async execute(batch: Pending<I, O>[]) {
    try {
      const outputs = await this.runBatch(batch.map((pending) => pending.item));
      if (outputs.length !== batch.length) {
        throw new Error(`the model returned ${outputs.length} results for a batch of ${batch.length}`);
      }
      batch.forEach((pending, index) => pending.resolve(outputs[index]!));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    }
  }
}
