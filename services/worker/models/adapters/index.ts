import type { ModelAdapter } from "../model-adapter.ts";
import { hfClipAdapter } from "./hf-clip.ts";
import { paddleOcrAdapter } from "./paddle-ocr.ts";
import { sileroVadAdapter } from "./silero-vad.ts";
import { tfjsUniversalSentenceEncoderAdapter } from "./tfjs-universal-sentence-encoder.ts";

/** Adapters by the name a manifest's `adapter` field uses. Adding a format is adding a line here. */
export const modelAdapters: Record<string, ModelAdapter> = {
  "hf-clip": hfClipAdapter,
  "paddle-ocr": paddleOcrAdapter,
  "silero-vad": sileroVadAdapter,
  "tfjs-universal-sentence-encoder": tfjsUniversalSentenceEncoderAdapter,
};
