import { expect, it } from "vitest";
import { BatchWriter } from "../../services/search/batch-writer.ts";

/** A store that answers when told to, recording each batch it was sent. */
function controllableStore() {
  const batches: number[][] = [];
  const pending: Array<{ resolve(): void; reject(error: Error): void }> = [];
  let inFlight = 0;
  let maxSeen = 0;
  const send = (items: number[]) =>
    new Promise<void>((resolve, reject) => {
      batches.push(items);
      maxSeen = Math.max(maxSeen, ++inFlight);
      pending.push({ resolve: () => (inFlight--, resolve()), reject: (error) => (inFlight--, reject(error)) });
    });
  const next = () => new Promise((resolve) => setImmediate(resolve));
  return { send, batches, pending, next, maxSeen: () => maxSeen };
}

it("coalesces writes that arrive while the store is busy into one batch, and settles each caller when its items are stored", async () => {
  const store = controllableStore();
  const writer = new BatchWriter(store.send, 100, 1);
  const settled: string[] = [];
  const first = writer.write([1, 2]).then(() => settled.push("first"));
  const second = writer.write([3]).then(() => settled.push("second"));
  const third = writer.write([4, 5]).then(() => settled.push("third"));
  expect(store.batches).toEqual([[1, 2]]); // one in flight; the others wait
  store.pending.shift()!.resolve();
  await first;
  await store.next();
  expect(store.batches).toEqual([[1, 2], [3, 4, 5]]);
  expect(settled).toEqual(["first"]);
  store.pending.shift()!.resolve();
  await Promise.all([second, third]);
  expect(settled).toEqual(["first", "second", "third"]);
});

it("splits by batch size, keeps at most maxInFlight batches out, and fails only the callers whose items failed", async () => {
  const store = controllableStore();
  const writer = new BatchWriter(store.send, 2, 2);
  const big = writer.write([1, 2, 3, 4, 5]);
  const other = writer.write([6]);
  expect(store.batches).toEqual([[1, 2], [3, 4]]);
  store.pending.shift()!.reject(new Error("overloaded"));
  await store.next();
  expect(store.batches.at(-1)).toEqual([5, 6]);
  store.pending.shift()!.resolve();
  store.pending.shift()!.resolve();
  await expect(big).rejects.toThrow("overloaded");
  await expect(other).resolves.toBeUndefined();
  expect(store.maxSeen()).toBe(2);
});
