import { Worker } from "node:worker_threads";
import { BatchSizeLog } from "./batch-size-log.ts";
import { sessionTuning, type ExecutionChoice } from "./execution-provider.ts";
import { ThreadCalls } from "./thread-calls.ts";

/**
 * Input buffers given back are kept up to this many times the largest one. Calls of 1 to maxBatchSize rows are in
 * flight several at a time (the thread merges them); keeping only two buffers dropped most, and the batches
 * then took a fresh one (0.44 MB of new ArrayBuffer per image at batch 8): V8 counts those as external memory,
 * and their growth started the main thread's major GCs ("external memory pressure").
 */
const SPARE_BYTES_PER_LARGEST = 4;

export type ThreadTensor = { type: "float32" | "int64" | "int32"; data: Float32Array | BigInt64Array | Int32Array; dims: number[] };

/**
 * onnxruntime-node runs a graph synchronously on the calling thread (its
 * `run` is a setImmediate around a blocking call), so a model run on the main
 * thread stops the event loop: no upload is read, no job row written, no
 * batch formed while it computes. OnnxThread runs sessions on a worker thread
 * instead; the main thread hands over the input tensors (moved, not copied)
 * and goes on with the rest of the ingest path while the model computes.
 *
 * One thread per runtime, one session per graph file in it, loaded on first
 * use; a failed load is forgotten. If the thread dies (a crash in native
 * code), every call in flight fails with that error and the next call starts
 * a new thread: the worker process lives on.
 */
export class OnnxThread {
  private readonly calls: ThreadCalls<Record<string, ThreadTensor>>;
  /** Input buffers the thread gave back after a run, kept for the next batch that fits in one. */
  private spare: ArrayBuffer[] = [];
  private ranBatches = new Map<string, BatchSizeLog>();

  constructor(execution: ExecutionChoice, intraOpThreads?: number) {
    const workerData = { options: { executionProviders: execution.providers, graphOptimizationLevel: "all", ...sessionTuning(intraOpThreads) } };
    this.calls = new ThreadCalls(
      "the inference thread",
      () => new Worker(new URL("./onnx-thread-worker.mjs", import.meta.url), { workerData }),
      (reply) => {
        this.keep(reply.returned as ArrayBuffer[] | undefined);
        if (typeof reply.batch === "number") this.batchSizes(reply.file as string).record(reply.batch);
        return reply.outputs as Record<string, ThreadTensor>;
      },
    );
  }

  /**
   * A Float32Array for an input: the start of the smallest buffer a run gave back that holds `length` (its
   * contents are stale: the caller writes every element), else a new one.
   */
  float32(length: number): Float32Array {
    let best = -1;
    this.spare.forEach((buffer, index) => {
      if (buffer.byteLength >= length * 4 && (best < 0 || buffer.byteLength < this.spare[best]!.byteLength)) best = index;
    });
    return best >= 0 ? new Float32Array(this.spare.splice(best, 1)[0]!, 0, length) : new Float32Array(length);
  }

  private keep(returned: ArrayBuffer[] | undefined) {
    if (!returned?.length) return;
    this.spare.push(...returned);
    // Enough for the calls in flight, within a budget: the largest are kept (they fit any smaller call), the smallest go.
    this.spare.sort((a, b) => b.byteLength - a.byteLength);
    const budget = SPARE_BYTES_PER_LARGEST * this.spare[0]!.byteLength;
    let kept = 0;
    let count = 0;
    while (count < this.spare.length && kept + this.spare[count]!.byteLength <= budget) kept += this.spare[count++]!.byteLength;
    this.spare.length = count;
  }

  /** Milliseconds the thread's graphs have computed so far: how busy the model was, for benches. */
  get busyMs(): number {
    return this.calls.busyMs;
  }

  /**
   * Runs `file` on `feeds`; resolves with the named outputs (all of them when `outputs` is not given).
   * `mergeUpTo`: a batch (one input, rows on its first dimension) that may run together with the calls queued
   * beside it on the thread, up to that many rows in all: whatever queued while the graph computed runs as one
   * batch the moment it is free, and each call gets its own rows back.
   */
  run(file: string, feeds: Record<string, ThreadTensor>, outputs?: string[], mergeUpTo?: number): Promise<Record<string, ThreadTensor>> {
    const transfer = [...new Set(Object.values(feeds).map((feed) => feed.data.buffer as ArrayBuffer))];
    return this.calls.call({ file, feeds, outputs, ...(mergeUpTo ? { mergeUpTo } : {}) }, transfer);
  }

  /** The sizes of the batches the thread computed of `file` (merged calls count as one), for benches and tests. */
  batchSizes(file: string): BatchSizeLog {
    let sizes = this.ranBatches.get(file);
    if (!sizes) this.ranBatches.set(file, (sizes = new BatchSizeLog()));
    return sizes;
  }

  close(): Promise<void> {
    return this.calls.close();
  }
}
