import * as ort from "onnxruntime-node";
import type { ModelAdapter } from "../model-adapter.ts";
import type { SpeechSegment } from "../model-runtime.ts";

/**
 * Silero VAD v5: a recurrent graph that scores 512-sample windows (32 ms at
 * 16 kHz), each with 64 samples of the window before. Clips in a batch run
 * side by side on the batch axis, each with its own recurrent state.
 */
export const sileroVadAdapter: ModelAdapter = {
  embeds: [],
  async load(model, context) {
    const { name, inputs, outputs, preprocessing } = model.manifest;
    const session = await context.sessions.get(name, model.files.model!);
    const window = preprocessing.audio?.windowSamples ?? 512;
    const contextSize = preprocessing.audio?.contextSamples ?? 64;
    const threshold = preprocessing.audio?.threshold ?? 0.5;
    const names = {
      audio: inputs.audio ?? "input",
      state: inputs.state ?? "state",
      sampleRate: inputs.sampleRate ?? "sr",
      probability: outputs.probability ?? "output",
      nextState: outputs.state ?? "stateN",
    };
    const sampleRate = new ort.Tensor("int64", BigInt64Array.from([16000n]), []);

    return {
      async detectSpeech(clips) {
        const batch = clips.length;
        const windows = Math.max(...clips.map((clip) => Math.ceil(clip.length / window)));
        let state: ort.Tensor = new ort.Tensor("float32", new Float32Array(2 * batch * 128), [2, batch, 128]);
        const probabilities = clips.map(() => new Float32Array(windows));
        const frame = contextSize + window;
        for (let w = 0; w < windows; w++) {
          const input = new Float32Array(batch * frame);
          clips.forEach((clip, b) => {
            // The window plus the 64 samples before it (zeros before the clip starts).
            const start = w * window - contextSize;
            for (let i = 0; i < frame; i++) {
              const at = start + i;
              input[b * frame + i] = at >= 0 && at < clip.length ? clip[at]! : 0;
            }
          });
          const result = await session.run({
            [names.audio]: new ort.Tensor("float32", input, [batch, frame]),
            [names.state]: state,
            [names.sampleRate]: sampleRate,
          });
          const scores = result[names.probability]!.data as Float32Array;
          clips.forEach((_, b) => (probabilities[b]![w] = scores[b]!));
          state = result[names.nextState] as ort.Tensor;
        }
        return clips.map((clip, b) => toSegments(probabilities[b]!.subarray(0, Math.ceil(clip.length / window)), window / 16000, threshold));
      },
    };
  },
};

/**
 * Windows above the threshold become segments; gaps under 100 ms are bridged
 * (a breath is not the end of speech) and segments under 90 ms dropped (a click is not speech).
 */
export function toSegments(probabilities: Float32Array, windowSec: number, threshold: number): SpeechSegment[] {
  const segments: SpeechSegment[] = [];
  let start: number | null = null;
  probabilities.forEach((probability, index) => {
    if (probability >= threshold && start === null) start = index;
    if (probability < threshold && start !== null) {
      segments.push({ start: start * windowSec, end: index * windowSec });
      start = null;
    }
  });
  if (start !== null) segments.push({ start: start * windowSec, end: probabilities.length * windowSec });
  const merged: SpeechSegment[] = [];
  for (const segment of segments) {
    const last = merged.at(-1);
    if (last && segment.start - last.end < 0.1) last.end = segment.end;
    else merged.push({ ...segment });
  }
  return merged.filter((segment) => segment.end - segment.start >= 0.09).map(({ start: s, end: e }) => ({ start: round(s), end: round(e) }));
}

const round = (seconds: number) => Math.round(seconds * 1000) / 1000;
