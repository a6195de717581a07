import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxThread } from "../../services/models/onnx-thread.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";

// Batches of different sizes are in flight at once (the thread merges them): the input buffers they give back are
// all kept for the next batches, within a budget of four times the largest, so a batch seldom takes a fresh
// ArrayBuffer (issue #20, encode: fresh ones started the main thread's major GCs on external memory pressure).

const cpu = { device: "cpu" as const, providers: ["cpu"], reason: "test" };
const SIZE = 32;
const ROW = 3 * SIZE * SIZE;
let dir: string;
let graph: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-onnx-spare-"));
  await writeTinyClipExport(path.join(dir, "clip"), { imageSize: SIZE, dimensions: 8, vision: { patch: 8, width: 32, layers: 1 } });
  graph = path.join(dir, "clip", "onnx", "vision_model.onnx");
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A batch of `rows` in a buffer from the thread, filled with ones (a fresh buffer reads zero, a kept one one). */
function batch(thread: OnnxThread, rows: number) {
  const data = thread.float32(rows * ROW).fill(1);
  return thread.run(graph, { pixel_values: { type: "float32", data, dims: [rows, 3, SIZE, SIZE] } }, undefined, 8);
}

describe("OnnxThread's input buffers", () => {
  it("keeps every buffer the batches in flight gave back, and hands them out again", async () => {
    const thread = new OnnxThread(cpu);
    try {
      await Promise.all([1, 2, 3, 4].map((rows) => batch(thread, rows)));
      // Four buffers (10 rows) came back, within 4 x 4 rows: each of the next four batches gets one of them.
      const next = [4, 3, 2, 1].map((rows) => thread.float32(rows * ROW));
      expect(next.map((data) => data[0])).toEqual([1, 1, 1, 1]);
      expect(next.map((data) => data.buffer.byteLength / 4 / ROW)).toEqual([4, 3, 2, 1]);
      expect(thread.float32(ROW)[0]).toBe(0);
    } finally {
      await thread.close();
    }
  });

  it("keeps at most four times the largest buffer's bytes, the largest first", async () => {
    const thread = new OnnxThread(cpu);
    try {
      await Promise.all([2, 1, 1, 1, 1, 1, 1, 1].map((rows) => batch(thread, rows)));
      // 9 rows came back; the budget is 8: the 2-row buffer and six 1-row ones fit (8 rows), one 1-row buffer goes.
      const kept = Array.from({ length: 7 }, () => thread.float32(ROW));
      expect(kept.map((data) => data[0])).toEqual([1, 1, 1, 1, 1, 1, 1]);
      expect(kept.map((data) => data.buffer.byteLength / 4 / ROW).sort()).toEqual([1, 1, 1, 1, 1, 1, 2]);
      expect(thread.float32(ROW)[0]).toBe(0);
    } finally {
      await thread.close();
    }
  });
});
