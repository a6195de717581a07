import type { DecodedImage } from "../assets/decoded-media.ts";
import type { Modality } from "../core/database.ts";

/**
 * Named vector spaces. Vectors are comparable only within one space:
 * "image-text" is the shared CLIP-style space (images and text), "sentence"
 * holds text-only sentence embeddings, "audio" holds audio embeddings.
 */
export const SPACES = ["image-text", "sentence", "audio"] as const;
export type SpaceName = (typeof SPACES)[number];

export type ModelInfo = {
  name: string;
  modality: Modality;
  /** embed, ocr, vad, transcribe, caption, generate, speech, project */
  task: string;
  /** Output vector size for embedders; null for models that return something else. */
  dimensions: number | null;
  /** "cpu" or "cuda": where this process runs it; "remote": another worker runs it for this one. */
  device: string;
  /** The space an embedder writes into; null for the others. */
  space: string | null;
};

/** One space's vectors for a batch of inputs: `vectors[i]` belongs to input i, L2-normalised. */
export type SpaceVectors = { space: string; model: string; vectors: Float32Array[] };

/** A line of text read from an image; the box is in the image's pixels. */
export type OcrLine = { text: string; confidence: number; box: { x: number; y: number; width: number; height: number } };

/** A stretch of speech in a clip, in seconds. */
export type SpeechSegment = { start: number; end: number };

/**
 * The worker's models, loaded lazily: nothing is read from disk until the
 * first call that needs a model (or, with MODEL_PRELOAD, right after the
 * worker starts: LocalModelRuntime.startPreload), then one session per model
 * is shared by the whole process and concurrent calls are batched.
 *
 * Model failures reject with a TesseraError: MODEL_NOT_FOUND (a declared file
 * is missing) or MODEL_ERROR (a bad graph, a shape mismatch, out of memory),
 * with `details.model` naming the model.
 */
export interface ModelRuntime {
  list(): ModelInfo[];
  /** Every space text reaches (e.g. the shared image-text space and a sentence space), one vector per input text. */
  embedText(texts: string[]): Promise<SpaceVectors[]>;
  /** Every space images reach, one vector per image. */
  embedImages(images: DecodedImage[]): Promise<SpaceVectors[]>;
  /** Every space audio reaches; clips are 16 kHz mono PCM in [-1, 1]. */
  embedAudio(clips: Float32Array[]): Promise<SpaceVectors[]>;
  /** Which spaces a query of a modality can be compared in, so search knows where to look. */
  spacesFor(modality: Modality): string[];
  /** OCR: lines of text in an image; [] when no OCR model is served. */
  readText(image: DecodedImage): Promise<OcrLine[]>;
  /** VAD: where a 16 kHz clip has speech; [] when no VAD model is served. */
  detectSpeech(clip: Float32Array): Promise<SpeechSegment[]>;
  /** Speech to text of a 16 kHz clip; null when no transcription model is served. */
  transcribe(clip: Float32Array): Promise<string | null>;
  close(): Promise<void>;
}
