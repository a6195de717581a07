import { describe, expect, it } from "vitest";
import { DynamicBatcher } from "../../services/models/dynamic-batcher.ts";

/** A model stand-in that records each batch it ran and answers item * 10. */
function recordingBatcher(limits: ConstructorParameters<typeof DynamicBatcher>[0], delayMs = 5) {
  const batches: number[][] = [];
  const batcher = new DynamicBatcher<number, number>(limits, async (items) => {
    batches.push(items);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    return items.map((item) => item * 10);
  });
  return { batcher, batches };
}

describe("dynamic batching", () => {
  it("groups concurrent requests up to the maximum batch size and routes each result to its caller", async () => {
    const { batcher, batches } = recordingBatcher({ maxBatchSize: 4, maxWaitMs: 50 });
    const results = await Promise.all(Array.from({ length: 10 }, (_, index) => batcher.runOne(index)));
    expect(results).toEqual(Array.from({ length: 10 }, (_, index) => index * 10));
    expect(batches.map((batch) => batch.length)).toEqual([4, 4, 2]);
    expect(batches.flat()).toEqual(Array.from({ length: 10 }, (_, index) => index));
  });

  it("runs a lone request after the maximum wait, not before", async () => {
    const { batcher, batches } = recordingBatcher({ maxBatchSize: 8, maxWaitMs: 40 }, 0);
    const started = performance.now();
    expect(await batcher.runOne(3)).toBe(30);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(35);
    expect(waited).toBeLessThan(400);
    expect(batches).toEqual([[3]]);
  });

  it("closes a text batch when its token budget is spent", async () => {
    const { batcher, batches } = recordingBatcher({ maxBatchSize: 100, maxWaitMs: 20, maxCost: 10, cost: (item) => item as number });
    await Promise.all([4, 4, 4, 9, 1].map((tokens) => batcher.runOne(tokens)));
    expect(batches).toEqual([[4, 4], [4], [9, 1]]);
  });

  it("runs a single item over the token budget alone rather than never", async () => {
    const { batcher, batches } = recordingBatcher({ maxBatchSize: 100, maxWaitMs: 5, maxCost: 10, cost: (item) => item as number });
    expect(await batcher.runOne(50)).toBe(500);
    expect(batches).toEqual([[50]]);
  });

  it("fails only the callers in the failing batch", async () => {
    let call = 0;
    const batcher = new DynamicBatcher<number, number>({ maxBatchSize: 2, maxWaitMs: 10 }, async (items) => {
      call++;
      if (call === 1) throw new Error("out of memory");
      return items;
    });
    const results = await Promise.allSettled([1, 2, 3, 4].map((item) => batcher.runOne(item)));
    expect(results.map((result) => result.status)).toEqual(["rejected", "rejected", "fulfilled", "fulfilled"]);
    expect((results[0] as PromiseRejectedResult).reason.message).toBe("out of memory");
  });

  it("rejects a model that returns the wrong number of results", async () => {
    const batcher = new DynamicBatcher<number, number>({ maxBatchSize: 4, maxWaitMs: 5 }, async () => [1]);
    await expect(Promise.all([batcher.runOne(1), batcher.runOne(2)])).rejects.toThrow(/1 results for a batch of 2/);
  });

  it("with batching off (size 1, no wait) runs every request alone", async () => {
    const { batcher, batches } = recordingBatcher({ maxBatchSize: 1, maxWaitMs: 0 });
    await Promise.all([1, 2, 3].map((item) => batcher.runOne(item)));
    expect(batches).toEqual([[1], [2], [3]]);
  });

  it("handing over ahead, gives the runner each batch as it forms, also while others run", async () => {
    const started: number[][] = [];
    const finish: Array<() => void> = [];
    const batcher = new DynamicBatcher<number, number>({ maxBatchSize: 3, maxWaitMs: 5, handOverAhead: true }, (items) => {
      started.push(items);
      return new Promise((resolve) => finish.push(() => resolve(items.map((item) => item * 10))));
    });
    const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
    const results = [batcher.runOne(1)];
    await settle();
    results.push(batcher.runOne(2), batcher.runOne(3));
    await settle();
    // The first batch still runs, and the next is already handed over (the runner queues it), after the wait.
    expect(started).toEqual([[1], [2, 3]]);
    results.push(...[4, 5, 6, 7].map((item) => batcher.runOne(item)));
    await settle();
    // A full batch goes at once; the rest after the wait.
    expect(started).toEqual([[1], [2, 3], [4, 5, 6], [7]]);
    for (const done of finish) done();
    expect(await Promise.all(results)).toEqual([10, 20, 30, 40, 50, 60, 70]);
  });

  it("without handing over ahead, keeps one batch out at a time", async () => {
    const started: number[][] = [];
    const finish: Array<() => void> = [];
    const batcher = new DynamicBatcher<number, number>({ maxBatchSize: 8, maxWaitMs: 5 }, (items) => {
      started.push(items);
      return new Promise((resolve) => finish.push(() => resolve(items)));
    });
    const results = [batcher.runOne(1)];
    await new Promise((resolve) => setTimeout(resolve, 30));
    results.push(batcher.runOne(2), batcher.runOne(3));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(started).toEqual([[1]]);
    finish[0]!();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(started).toEqual([[1], [2, 3]]);
    finish[1]!();
    await Promise.all(results);
  });
});
