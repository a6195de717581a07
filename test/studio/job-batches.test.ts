import { describe, expect, it } from "vitest";
import { batchedFollower, limiter } from "../../studio/src/job-batches.ts";

/* The upload zone's batching: jobs whose files are sent are followed on shared `jobsEvents` streams. */
type Stream = { ids: string[]; release: () => void };

function harness(slots: number, maxPerBatch: number) {
  const streams: Stream[] = [];
  let open = 0;
  let mostOpen = 0;
  const follow = batchedFollower<number>(limiter(slots), maxPerBatch, (batch, release) => {
    open++;
    mostOpen = Math.max(mostOpen, open);
    let released = false;
    streams.push({
      ids: [...batch.keys()],
      release: () => {
        if (!released) open--;
        released = true;
        release();
      },
    });
  });
  return { follow, streams, mostOpen: () => mostOpen };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("upload zone: jobs followed in batches", () => {
  it("starts a stream at once when a slot is free; jobs sent while every slot is busy join the next stream", async () => {
    const { follow, streams, mostOpen } = harness(1, 100);
    follow("a", 0);
    await settle();
    expect(streams.map((stream) => stream.ids)).toEqual([["a"]]);
    follow("b", 1);
    follow("c", 2);
    await settle();
    expect(streams).toHaveLength(1); // the one slot is a's
    streams[0]!.release();
    await settle();
    expect(streams.map((stream) => stream.ids)).toEqual([["a"], ["b", "c"]]);
    follow("d", 3);
    streams[1]!.release();
    await settle();
    expect(streams.map((stream) => stream.ids)).toEqual([["a"], ["b", "c"], ["d"]]);
    expect(mostOpen()).toBe(1);
  });

  it("never holds more streams than slots, and puts at most maxPerBatch jobs on one stream", async () => {
    const { follow, streams, mostOpen } = harness(2, 3);
    for (let n = 0; n < 10; n++) follow(`job-${n}`, n);
    await settle();
    const lengths = () => streams.splice(0).map((stream) => (stream.release(), stream.ids.length));
    expect(lengths()).toEqual([3, 3]); // both slots taken; the other four wait
    await settle();
    expect(lengths()).toEqual([3, 1]);
    await settle();
    expect(lengths()).toEqual([]);
    expect(mostOpen()).toBe(2);
  });

  it("follows every job once, with the value it was given", async () => {
    const seen = new Map<string, number>();
    const follow = batchedFollower<number>(limiter(3), 4, (batch, release) => {
      for (const [id, value] of batch) {
        expect(seen.has(id)).toBe(false);
        seen.set(id, value);
      }
      setTimeout(release, 1);
    });
    for (let n = 0; n < 25; n++) follow(`job-${n}`, n);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect([...seen].sort((a, b) => a[1] - b[1])).toEqual(Array.from({ length: 25 }, (_, n) => [`job-${n}`, n]));
  });
});
