import { describe, expect, it } from "vitest";
import { BatchSizeLog } from "../../services/models/batch-size-log.ts";
import { DynamicBatcher } from "../../services/models/dynamic-batcher.ts";

describe("BatchSizeLog", () => {
  it("reads the sizes recorded after a mark", () => {
    const log = new BatchSizeLog();
    log.record(3);
    const mark = log.count;
    log.record(8);
    log.record(1);
    expect(log.since(mark)).toEqual([8, 1]);
    expect(log.since()).toEqual([3, 8, 1]);
  });

  it("keeps a bounded number of sizes however many batches run, and still reads the latest after a mark", () => {
    const log = new BatchSizeLog(100);
    for (let batch = 0; batch < 100_000; batch++) log.record(batch % 7);
    expect(log.count).toBe(100_000);
    expect(log.since().length).toBeLessThan(200);
    const mark = log.count;
    log.record(5);
    log.record(6);
    expect(log.since(mark)).toEqual([5, 6]);
    expect(log.since(log.count - 50)).toHaveLength(50);
  });
});

describe("DynamicBatcher's batch sizes", () => {
  it("stay bounded over a long run", async () => {
    const batcher = new DynamicBatcher<number, number>({ maxBatchSize: 1, maxWaitMs: 0 }, async (items) => items);
    for (let round = 0; round < 5_000; round++) await batcher.runOne(round);
    expect(batcher.batchSizes.count).toBe(5_000);
    expect(batcher.batchSizes.since().length).toBeLessThanOrEqual(2048);
  });
});
