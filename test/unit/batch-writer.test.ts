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

it("lets go of a caller that gives up: its queued items are not sent, a batch only it waits for frees its slot, the next write goes out", async () => {
  const store = controllableStore();
  const writer = new BatchWriter(store.send, 2, 1);
  const abandoned = new AbortController();
  const stuck = writer.write([1, 2, 3], abandoned.signal); // [1, 2] out and never answered, [3] queued
  const shared = writer.write([4]); // queued behind [3], in the same next batch
  expect(store.batches).toEqual([[1, 2]]);
  abandoned.abort(new Error("given up"));
  await expect(stuck).rejects.toThrow("given up");
  await store.next();
  // The stuck batch's slot is free at once, and [3] is never sent: only the caller still waiting is.
  expect(store.batches).toEqual([[1, 2], [4]]);
  store.pending[1]!.resolve();
  await expect(shared).resolves.toBeUndefined();
  // The given-up batch answering late changes nothing.
  store.pending[0]!.resolve();
  await store.next();
  expect(store.batches).toHaveLength(2);
});

it("a batch shared with a caller still waiting stays out, holds its slot, and that caller gets its outcome", async () => {
  const store = controllableStore();
  const writer = new BatchWriter(store.send, 10, 1);
  const opening = writer.write([0]);
  const leaving = new AbortController();
  const gone = writer.write([1], leaving.signal);
  const staying = writer.write([2]);
  store.pending[0]!.resolve();
  await opening;
  await store.next();
  expect(store.batches).toEqual([[0], [1, 2]]);
  leaving.abort(new Error("left"));
  await expect(gone).rejects.toThrow("left");
  const after = writer.write([3]);
  await store.next();
  expect(store.batches).toHaveLength(2); // [1, 2] still holds the one slot
  store.pending[1]!.resolve();
  await expect(staying).resolves.toBeUndefined();
  await store.next();
  expect(store.batches.at(-1)).toEqual([3]);
  store.pending[2]!.resolve();
  await expect(after).resolves.toBeUndefined();
});

it("a signal already aborted sends nothing", async () => {
  const store = controllableStore();
  const writer = new BatchWriter(store.send, 10, 1);
  const signal = AbortSignal.abort(new Error("too late"));
  await expect(writer.write([1], signal)).rejects.toThrow("too late");
  expect(store.batches).toEqual([]);
});
