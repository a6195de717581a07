import { Worker } from "node:worker_threads";
import { ThreadCalls } from "./thread-calls.ts";

/** Which text encoder the thread runs: the Universal Sentence Encoder on TF.js, or a CLIP export's text tower. */
export type TextEncoderSpec =
  | { kind: "universal-sentence-encoder"; modelFile: string; vocabFile: string; maxLength?: number }
  | { kind: "clip-text"; folder: string; device: string; sessionOptions: Record<string, unknown>; maxLength: number; output: string };

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
  private readonly calls = new ThreadCalls<Float32Array[]>(
    "the text encoder thread",
    () => new Worker(new URL("./text-encoder-thread-worker.mjs", import.meta.url)),
    (reply) => reply.vectors as Float32Array[],
  );

  /** Milliseconds the thread has spent encoding, for benches. */
  get busyMs(): number {
    return this.calls.busyMs;
  }

  /** Loads the encoder ahead of its first texts, so a load error surfaces where the model is loaded. */
  async load(spec: TextEncoderSpec): Promise<void> {
    await this.calls.call({ spec, texts: null });
  }

  embed(spec: TextEncoderSpec, texts: string[]): Promise<Float32Array[]> {
    return this.calls.call({ spec, texts });
  }

  close(): Promise<void> {
    return this.calls.close();
  }
}

/** About four characters a token in English prose: the batcher's budget, without running a tokeniser. */
export function estimateTokens(text: string, maxLength?: number): number {
  const estimate = Math.max(1, Math.ceil(text.length / 4));
  return maxLength ? Math.min(estimate, maxLength) : estimate;
}
