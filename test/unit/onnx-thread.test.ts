import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxThread } from "../../services/models/onnx-thread.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";

const cpu = { device: "cpu" as const, providers: ["cpu"], reason: "test" };
let dir: string;
let graph: string;
const SIZE = 64;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-onnx-thread-"));
  // A vision tower heavy enough that a run takes a while (tens of ms at batch 8).
  await writeTinyClipExport(path.join(dir, "clip"), { imageSize: SIZE, dimensions: 32, vision: { patch: 8, width: 256, layers: 4 } });
  graph = path.join(dir, "clip", "onnx", "vision_model.onnx");
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function pixels(batch: number) {
  return Float32Array.from({ length: batch * 3 * SIZE * SIZE }, (_, index) => Math.sin(index) * 0.5);
}

describe("OnnxThread: sessions on a worker thread", () => {
  it("gives the same outputs as the same graph on the calling thread", async () => {
    const thread = new OnnxThread(cpu);
    try {
      const input = pixels(2);
      const direct = await ort.InferenceSession.create(graph);
      const expected = (await direct.run({ pixel_values: new ort.Tensor("float32", input.slice(), [2, 3, SIZE, SIZE]) })).image_embeds!;
      await direct.release();
      const result = await thread.run(graph, { pixel_values: { type: "float32", data: input, dims: [2, 3, SIZE, SIZE] } }, ["image_embeds"]);
      expect(Object.keys(result)).toEqual(["image_embeds"]);
      expect(result.image_embeds!.dims).toEqual([2, 32]);
      expect(Array.from(result.image_embeds!.data as Float32Array)).toEqual(Array.from(expected.data as Float32Array));
    } finally {
      await thread.close();
    }
  });

  it("leaves the event loop free while the model computes", async () => {
    const thread = new OnnxThread(cpu);
    try {
      await thread.run(graph, { pixel_values: { type: "float32", data: pixels(1), dims: [1, 3, SIZE, SIZE] } }); // loads the session
      let done = false;
      const busyBefore = thread.busyMs;
      const started = performance.now();
      const run = thread.run(graph, { pixel_values: { type: "float32", data: pixels(8), dims: [8, 3, SIZE, SIZE] } }).then(() => (done = true));
      // On the calling thread onnxruntime-node's run blocks the loop from one setImmediate to its end: a tick or two.
      let ticks = 0;
      while (!done) {
        await new Promise((resolve) => setImmediate(resolve));
        ticks++;
      }
      await run;
      expect(ticks).toBeGreaterThan(5);
      // The thread reports how long the graph computed: some of the call's time, never more than all of it.
      const computed = thread.busyMs - busyBefore;
      expect(computed).toBeGreaterThan(0);
      expect(computed).toBeLessThanOrEqual(performance.now() - started + 1);
    } finally {
      await thread.close();
    }
  });

  it("gives an input's buffer back after the run, and hands it out for the next batch that fits", async () => {
    const thread = new OnnxThread(cpu);
    try {
      const length = 2 * 3 * SIZE * SIZE;
      const input = thread.float32(length);
      input.set(pixels(2));
      await thread.run(graph, { pixel_values: { type: "float32", data: input, dims: [2, 3, SIZE, SIZE] } });
      // A batch of one fits in it: the same bytes (stale, not a new zeroed array), a view of the right length.
      const next = thread.float32(length / 2);
      expect(next).toHaveLength(length / 2);
      expect(next.buffer.byteLength).toBe(length * 4);
      expect(Array.from(next.subarray(0, 8))).toEqual(Array.from(pixels(1).subarray(0, 8)));
      // Taken: the next call gets a new one.
      expect(thread.float32(length / 2)[0]).toBe(0);
      // The view runs as a batch of one and comes back too.
      const result = await thread.run(graph, { pixel_values: { type: "float32", data: next, dims: [1, 3, SIZE, SIZE] } });
      expect(result.image_embeds!.dims).toEqual([1, 32]);
      expect(thread.float32(length).buffer.byteLength).toBe(length * 4);
    } finally {
      await thread.close();
    }
  });

  it("runs the calls queued while the graph computes as one batch, each answered with its own rows", async () => {
    const thread = new OnnxThread(cpu);
    try {
      const feed = (rows: number, seed: number) => ({
        pixel_values: { type: "float32" as const, data: Float32Array.from({ length: rows * 3 * SIZE * SIZE }, (_, index) => Math.sin(index + seed) * 0.5), dims: [rows, 3, SIZE, SIZE] },
      });
      const alone = await Promise.all([1, 2, 3].map(async (seed) => Array.from((await thread.run(graph, feed(seed, seed), ["image_embeds"])).image_embeds!.data as Float32Array)));
      const before = thread.batchSizes(graph).count;
      // The first call computes while the next three queue: they run together, as one batch of 1 + 2 + 3 rows.
      const first = thread.run(graph, feed(8, 0), ["image_embeds"], 8);
      const queued = [1, 2, 3].map((seed) => thread.run(graph, feed(seed, seed), ["image_embeds"], 8));
      await first;
      const together = await Promise.all(queued);
      expect(thread.batchSizes(graph).since(before)).toEqual([8, 6]);
      together.forEach((result, index) => {
        expect(result.image_embeds!.dims).toEqual([index + 1, 32]);
        const got = Array.from(result.image_embeds!.data as Float32Array);
        got.forEach((value, at) => expect(value).toBeCloseTo(alone[index]![at]!, 4));
      });
      // Past the largest batch, or without mergeUpTo, a call runs alone.
      const big = thread.run(graph, feed(8, 0), ["image_embeds"], 8);
      const apart = [thread.run(graph, feed(5, 1), ["image_embeds"], 8), thread.run(graph, feed(4, 2), ["image_embeds"], 8), thread.run(graph, feed(1, 3), ["image_embeds"])];
      await Promise.all([big, ...apart]);
      expect(thread.batchSizes(graph).since(before + 2)).toEqual([8, 5, 4, 1]);
    } finally {
      await thread.close();
    }
  });

  it("rejects a broken graph or a wrong input with an Error, and goes on serving good calls", async () => {
    const thread = new OnnxThread(cpu);
    try {
      const broken = path.join(dir, "broken.onnx");
      await fs.writeFile(broken, "not a protobuf");
      await expect(thread.run(broken, { pixel_values: { type: "float32", data: pixels(1), dims: [1, 3, SIZE, SIZE] } })).rejects.toThrow(Error);
      await expect(thread.run(graph, { pixel_values: { type: "float32", data: new Float32Array(3 * 10 * 10), dims: [1, 3, 10, 10] } })).rejects.toThrow(Error);
      // A file fixed in place loads on the next call: the failed load was forgotten.
      await fs.copyFile(graph, broken);
      const result = await thread.run(broken, { pixel_values: { type: "float32", data: pixels(1), dims: [1, 3, SIZE, SIZE] } });
      expect(result.image_embeds!.dims).toEqual([1, 32]);
    } finally {
      await thread.close();
    }
  });
});

describe("OnnxThread.close", () => {
  it("closes an idle thread, and a later call starts a fresh one", async () => {
    const thread = new OnnxThread(cpu);
    await thread.run(graph, { pixel_values: { type: "float32", data: pixels(1), dims: [1, 3, SIZE, SIZE] } });
    // Let the thread go idle (unref'd) before closing.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await thread.close();
    // A new call after close starts a fresh thread.
    const again = await thread.run(graph, { pixel_values: { type: "float32", data: pixels(1), dims: [1, 3, SIZE, SIZE] } });
    expect(again.image_embeds!.dims).toEqual([1, 32]);
    await thread.close();
  });
});
