import type { BatchSizeLog } from "./batch-size-log.ts";
import type { Modality } from "../core/database.ts";
import type { Logger } from "../core/logger.ts";
import type { ExecutionChoice } from "./execution-provider.ts";
import type { ImageInputSize } from "./image-preprocess.ts";
import type { ResolvedModel } from "./model-registry.ts";
import type { OcrLine, SpeechSegment } from "./model-runtime.ts";
import type { OnnxSessions } from "./onnx-sessions.ts";
import type { OnnxThread } from "./onnx-thread.ts";
import type { TextEncoderThread } from "./text-encoder-thread.ts";
import type { DecodedImage } from "../assets/decoded-media.ts";

/** A loaded model: the adapter implements the calls its task needs, each over a batch. */
export type ModelHandle = {
  embedText?(texts: string[]): Promise<Float32Array[]>;
  embedImages?(images: DecodedImage[]): Promise<Float32Array[]>;
  /**
   * The size the image tower takes. The runtime resizes each image to it as the image arrives,
   * before batching (so it overlaps the batch being computed), and a remote caller before sending.
   */
  imageInput?: ImageInputSize;
  embedAudio?(clips: Float32Array[]): Promise<Float32Array[]>;
  readText?(images: DecodedImage[]): Promise<OcrLine[][]>;
  detectSpeech?(clips: Float32Array[]): Promise<SpeechSegment[][]>;
  transcribe?(clips: Float32Array[]): Promise<string[]>;
  /** Early fusion: one vector from several spaces' vectors (in the manifest's `projector.from` order). */
  project?(inputs: Float32Array[][]): Promise<Float32Array[]>;
  /**
   * Operations whose batches the handle's runner queues and joins when it is free (the inference thread): the
   * batcher hands each batch over as it forms, also while others run (BatchLimits.handOverAhead).
   */
  queuesBatches?: Array<"embedImages" | "embedText" | "embedAudio">;
  /** For those operations: the sizes of the batches the runner computed, joined batches counted as one. */
  ranBatchSizes?(operation: string): BatchSizeLog | undefined;
  /** Tokens a text costs, for the batcher's token budget. */
  countTokens?(text: string): number;
  close?(): Promise<void>;
};

export type AdapterContext = {
  execution: ExecutionChoice;
  sessions: OnnxSessions;
  /** Sessions on a worker thread, for graphs on the hot path: a run there leaves the event loop free. */
  thread: OnnxThread;
  /** Text encoders (tokenisers and text graphs) on a worker thread: a long text never holds the event loop. */
  textThread: TextEncoderThread;
  intraOpThreads?: number;
  /** False when batching is off (every request runs alone): the thread must not join calls either. */
  batching: boolean;
  logger: Logger;
};

/** One file per model format/family under adapters/; a manifest names its adapter. */
export type ModelAdapter = {
  /** Modalities the adapter embeds (CLIP: text and images); [] for non-embedders. */
  embeds: Modality[];
  /** What one manifest of it embeds, when that depends on the manifest (a remote encoder with only a text model). */
  embedsFor?(model: ResolvedModel): Modality[];
  /** Files inside an export folder the adapter cannot run without; a model lacking one is not served. */
  requiredFiles?(model: ResolvedModel): string[];
  load(model: ResolvedModel, context: AdapterContext): Promise<ModelHandle>;
};

/** The modalities a served model embeds. */
export function embeddedModalities(adapter: ModelAdapter, model: ResolvedModel): Modality[] {
  return adapter.embedsFor?.(model) ?? adapter.embeds;
}
