import type { Logger } from "../../core/logger.ts";
import type { DecodedImage } from "../ingest/ingest-stage.ts";
import type { Modality, ModelInfo, ModelRuntime, OcrLine, SpaceVectors, SpeechSegment } from "./model-runtime.ts";

export type ModelRuntimeOptions = {
  /** Where weights live (MODELS_DIR). */
  modelsDir: string;
  /** "cuda" asks for the CUDA execution provider; it falls back to CPU when it is missing. */
  device?: "cpu" | "cuda";
  /** Globs of model names this process serves (`clip-*`); default: every model whose files exist. */
  models?: string[];
  logger: Logger;
};

/** The in-process ModelRuntime: manifests from models/*.yaml, sessions loaded on first use. */
export class LocalModelRuntime implements ModelRuntime {
  constructor(private options: ModelRuntimeOptions) {}

  /** Sets what this process serves; the worker calls it from its command line before the first job. */
  configure(serving: { device?: "cpu" | "cuda"; models?: string[] }) {
    this.options = { ...this.options, ...serving };
  }

  list(): ModelInfo[] {
    return [];
  }
  async embedText(_texts: string[]): Promise<SpaceVectors[]> {
    return [];
  }
  async embedImages(_images: DecodedImage[]): Promise<SpaceVectors[]> {
    return [];
  }
  async embedAudio(_clips: Float32Array[]): Promise<SpaceVectors[]> {
    return [];
  }
  spacesFor(_modality: Modality): string[] {
    return [];
  }
  async readText(_image: DecodedImage): Promise<OcrLine[]> {
    return [];
  }
  async detectSpeech(_clip: Float32Array): Promise<SpeechSegment[]> {
    return [];
  }
  async transcribe(_clip: Float32Array): Promise<string | null> {
    return null;
  }
  async close() {}
}

export function createModelRuntime(options: ModelRuntimeOptions) {
  return new LocalModelRuntime(options);
}
