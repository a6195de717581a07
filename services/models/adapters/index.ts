import type { ModelAdapter } from "../model-adapter.ts";
import { hfClipAdapter } from "./hf-clip.ts";
import { hfSpeechRecognitionAdapter } from "./hf-speech-recognition.ts";
import { kserveV2EncoderAdapter } from "./kserve-v2-encoder.ts";
import { matrixProjectorAdapter } from "./matrix-projector.ts";
import { onnxProjectorAdapter } from "./onnx-projector.ts";
import { openAiEmbeddingsEncoderAdapter } from "./openai-embeddings-encoder.ts";
import { openWakeWordAudioAdapter } from "./openwakeword-audio.ts";
import { paddleOcrAdapter } from "./paddle-ocr.ts";
import { sileroVadAdapter } from "./silero-vad.ts";
import { tfjsUniversalSentenceEncoderAdapter } from "./tfjs-universal-sentence-encoder.ts";

/** Adapters by the name a manifest's `adapter` field uses. Adding a format is adding a line here. */
export const modelAdapters: Record<string, ModelAdapter> = {
  "hf-clip": hfClipAdapter,
  "hf-speech-recognition": hfSpeechRecognitionAdapter,
  "kserve-v2-encoder": kserveV2EncoderAdapter,
  "matrix-projector": matrixProjectorAdapter,
  "onnx-projector": onnxProjectorAdapter,
  "openai-embeddings-encoder": openAiEmbeddingsEncoderAdapter,
  "openwakeword-audio": openWakeWordAudioAdapter,
  "paddle-ocr": paddleOcrAdapter,
  "silero-vad": sileroVadAdapter,
  "tfjs-universal-sentence-encoder": tfjsUniversalSentenceEncoderAdapter,
};
