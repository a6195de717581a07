import { Worker } from "node:worker_threads";
import { sessionTuning, type ExecutionChoice } from "./execution-provider.ts";

export type ThreadTensor = { type: "float32" | "int64" | "int32"; data: Float32Array | BigInt64Array | Int32Array; dims: number[] };

type Pending = { resolve(outputs: Record<string, ThreadTensor>): void; reject(error: Error): void };

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
  private worker: Worker | undefined;
  private pending = new Map<number, Pending>();
  private nextId = 0;
  /** Milliseconds the thread's graphs have computed so far: how busy the model was, for benches. */
  busyMs = 0;

  constructor(
    private readonly execution: ExecutionChoice,
    private readonly intraOpThreads?: number,
  ) {}

  /** Runs `file` on `feeds`; resolves with the named outputs (all of them when `outputs` is not given). */
  run(file: string, feeds: Record<string, ThreadTensor>, outputs?: string[]): Promise<Record<string, ThreadTensor>> {
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      const transfer = [...new Set(Object.values(feeds).map((feed) => feed.data.buffer as ArrayBuffer))];
      worker.postMessage({ id, file, feeds, outputs }, transfer);
    });
  }

  async close() {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    const closed = new Promise<void>((resolve) => {
      worker.on("message", (message: { type?: string }) => message.type === "closed" && resolve());
      worker.once("exit", () => resolve());
    });
    worker.ref(); // an idle thread is unref'd: without this, nothing would keep the process alive to hear it close
    worker.postMessage({ type: "close" });
    await closed;
    await worker.terminate();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL("./onnx-thread-worker.mjs", import.meta.url), {
      workerData: { options: { executionProviders: this.execution.providers, graphOptimizationLevel: "all", ...sessionTuning(this.intraOpThreads) } },
    });
    worker.on("message", (message: { id?: number; outputs?: Record<string, ThreadTensor>; error?: string; runMs?: number }) => {
      if (message.id === undefined) return;
      this.busyMs += message.runMs ?? 0;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (message.error !== undefined) pending.reject(new Error(message.error));
      else pending.resolve(message.outputs!);
      // An idle thread must not keep the process alive.
      if (this.pending.size === 0) worker.unref();
    });
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const pending of this.pending.values()) pending.reject(error);
      this.pending.clear();
    };
    worker.on("error", (error) => fail(error));
    worker.on("exit", (code) => fail(new Error(`the inference thread exited (code ${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }
}
