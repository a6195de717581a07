import { Worker } from "node:worker_threads";

/** Which text encoder the thread runs: the Universal Sentence Encoder on TF.js, or a CLIP export's text tower. */
export type TextEncoderSpec =
  | { kind: "universal-sentence-encoder"; modelFile: string; vocabFile: string; maxLength?: number }
  | { kind: "clip-text"; folder: string; device: string; sessionOptions: Record<string, unknown>; maxLength: number; output: string };

type Pending = { resolve(vectors: Float32Array[]): void; reject(error: Error): void };

/**
 * Text encoding is CPU work in JavaScript (tokenisers, TF.js on WebAssembly) or a synchronous graph run
 * (transformers.js' onnxruntime session), and `npm start` serves HTTP from the same process: on the main
 * thread one long text stopped every request for tens of seconds and cost the worker its BullMQ locks.
 * TextEncoderThread runs the text encoders on a worker thread instead; the main thread sends the texts
 * and receives the vectors (moved, not copied).
 *
 * One thread per runtime; an idle thread does not keep the process alive. If the thread dies, every call
 * in flight fails with that error and the next call starts a new thread.
 */
export class TextEncoderThread {
  private worker: Worker | undefined;
  private pending = new Map<number, Pending>();
  private nextId = 0;
  /** Milliseconds the thread has spent encoding, for benches. */
  busyMs = 0;

  /** Loads the encoder ahead of its first texts, so a load error surfaces where the model is loaded. */
  async load(spec: TextEncoderSpec): Promise<void> {
    await this.send(spec, null);
  }

  embed(spec: TextEncoderSpec, texts: string[]): Promise<Float32Array[]> {
    return this.send(spec, texts);
  }

  async close() {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    const closed = new Promise<void>((resolve) => {
      worker.on("message", (message: { type?: string }) => message.type === "closed" && resolve());
      worker.once("exit", () => resolve());
    });
    worker.ref();
    worker.postMessage({ type: "close" });
    await closed;
    await worker.terminate();
  }

  private send(spec: TextEncoderSpec, texts: string[] | null): Promise<Float32Array[]> {
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, spec, texts });
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL("./text-encoder-thread-worker.mjs", import.meta.url));
    worker.on("message", (message: { id?: number; vectors?: Float32Array[]; error?: string; runMs?: number }) => {
      if (message.id === undefined) return;
      this.busyMs += message.runMs ?? 0;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (message.error !== undefined) pending.reject(new Error(message.error));
      else pending.resolve(message.vectors!);
      if (this.pending.size === 0) worker.unref();
    });
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const pending of this.pending.values()) pending.reject(error);
      this.pending.clear();
    };
    worker.on("error", (error) => fail(error));
    worker.on("exit", (code) => fail(new Error(`the text encoder thread exited (code ${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

/** About four characters a token in English prose: the batcher's budget, without running a tokeniser. */
export function estimateTokens(text: string, maxLength?: number): number {
  const estimate = Math.max(1, Math.ceil(text.length / 4));
  return maxLength ? Math.min(estimate, maxLength) : estimate;
}
