import { Worker } from "node:worker_threads";
import { sessionTuning, type ExecutionChoice } from "./execution-provider.ts";
import { ThreadCalls } from "./thread-calls.ts";

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

  constructor(execution: ExecutionChoice, intraOpThreads?: number) {
    const workerData = { options: { executionProviders: execution.providers, graphOptimizationLevel: "all", ...sessionTuning(intraOpThreads) } };
    this.calls = new ThreadCalls(
      "the inference thread",
      () => new Worker(new URL("./onnx-thread-worker.mjs", import.meta.url), { workerData }),
      (reply) => reply.outputs as Record<string, ThreadTensor>,
    );
  }

  /** Milliseconds the thread's graphs have computed so far: how busy the model was, for benches. */
  get busyMs(): number {
    return this.calls.busyMs;
  }

  /** Runs `file` on `feeds`; resolves with the named outputs (all of them when `outputs` is not given). */
  run(file: string, feeds: Record<string, ThreadTensor>, outputs?: string[]): Promise<Record<string, ThreadTensor>> {
    const transfer = [...new Set(Object.values(feeds).map((feed) => feed.data.buffer as ArrayBuffer))];
    return this.calls.call({ file, feeds, outputs }, transfer);
  }

  close(): Promise<void> {
    return this.calls.close();
  }
}
