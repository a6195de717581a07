import { BatchSizeLog } from "./batch-size-log.ts";

export type BatchLimits = {
  /** Most items in one batch. */
  maxBatchSize: number;
  /** Longest an item waits for company before its batch runs anyway. */
  maxWaitMs: number;
  /** For text: most tokens (summed `cost`) in one batch. */
  maxCost?: number;
  cost?: (item: unknown) => number;
  /**
   * For a runner that queues batches and joins the queued ones into one when it is free (the inference thread):
   * each batch is handed over as it forms (full, or its oldest item waited maxWaitMs), also while others run.
   * The model then starts on everything that queued the moment it finishes a batch, without waiting for this
   * thread to hear the result and hand the next one over.
   */
  handOverAhead?: boolean;
};

type Pending<I, O> = { item: I; cost: number; resolve(output: O): void; reject(error: unknown): void };

/**
 * Groups concurrent requests for one model into batches: a batch runs when it
 * is full (items or token budget) or its oldest item has waited maxWaitMs,
 * whichever comes first. One batch runs at a time (unless handOverAhead); the
 * next one forms meanwhile. Each caller gets back exactly its own outputs, or
 * the batch's error.
 */
export class DynamicBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  /** Sizes of the batches run so far; benches and tests read it. */
  readonly batchSizes = new BatchSizeLog();

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
    if (this.queue.length === 0 || this.waitsForRunning()) return;
    if (this.full() || this.limits.maxWaitMs <= 0) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.limits.maxWaitMs);
    }
  }

  private waitsForRunning() {
    return this.running > 0 && !this.limits.handOverAhead;
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
    if (this.queue.length === 0 || this.waitsForRunning()) return;
    const batch = this.takeBatch();
    this.running++;
    this.batchSizes.record(batch.length);
    void this.execute(batch).finally(() => {
      this.running--;
      // Whatever queued while this batch ran has waited long enough: run it now.
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
