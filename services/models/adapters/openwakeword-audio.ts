import * as ort from "onnxruntime-node";
import type { ModelAdapter } from "../model-adapter.ts";
import { meanPool } from "../vector-math.ts";

/**
 * openWakeWord's shared audio front end as a general audio embedder: a
 * melspectrogram graph (10 ms frames, 32 bins), then the speech embedding
 * graph over 76-frame windows (~0.775 s) every 8 frames; a clip's vector is
 * the mean of its window embeddings (96-d).
 */
export const openWakeWordAudioAdapter: ModelAdapter = {
  embeds: ["AUDIO"],
  async load(model, context) {
    const { name, inputs, outputs, preprocessing } = model.manifest;
    const [mel, embedding] = await Promise.all([
      context.sessions.get(name, model.files.melspectrogram!),
      context.sessions.get(name, model.files.embedding!),
    ]);
    const windowFrames = preprocessing.audio?.melFrames ?? 76;
    const hopFrames = preprocessing.audio?.melHop ?? 8;
    const bins = preprocessing.audio?.melBins ?? 32;
    // Enough samples for one full window of mel frames (400-sample FFT, 160 hop).
    const minSamples = (windowFrames + 1) * 160 + 400;
    const maxWindows = model.manifest.batch.maxBatchSize * 16;
    const names = {
      melIn: inputs.melspectrogram ?? "input",
      melOut: outputs.melspectrogram ?? "output",
      embIn: inputs.embedding ?? "input_1",
      embOut: outputs.embedding ?? "conv2d_19",
    };

    async function melFrames(clip: Float32Array): Promise<{ data: Float32Array; frames: number }> {
      const padded = clip.length >= minSamples ? clip : new Float32Array(minSamples);
      if (padded !== clip) padded.set(clip);
      // The graph expects int16-scaled PCM, as openWakeWord feeds it.
      const scaled = Float32Array.from(padded, (sample) => sample * 32767);
      const result = await mel.run({ [names.melIn]: new ort.Tensor("float32", scaled, [1, scaled.length]) });
      const output = result[names.melOut]!;
      const frames = output.dims[2]!;
      // openWakeWord's fixed rescaling of the mel output.
      const data = Float32Array.from(output.data as Float32Array, (value) => value / 10 + 2);
      return { data, frames };
    }

    return {
      async embedAudio(clips) {
        const windowsPerClip: number[] = [];
        const windowData: Float32Array[] = [];
        for (const clip of clips) {
          const { data, frames } = await melFrames(clip);
          const available = Math.floor((frames - windowFrames) / hopFrames) + 1;
          // Long clips: spread at most maxWindows windows evenly over the clip.
          const step = available > maxWindows ? ((frames - windowFrames) / (maxWindows - 1)) : hopFrames;
          const count = Math.min(available, maxWindows);
          for (let w = 0; w < count; w++) {
            const start = Math.round(w * step) * bins;
            windowData.push(data.subarray(start, start + windowFrames * bins));
          }
          windowsPerClip.push(count);
        }
        const batch = new Float32Array(windowData.length * windowFrames * bins);
        windowData.forEach((window, index) => batch.set(window, index * windowFrames * bins));
        const result = await embedding.run({
          [names.embIn]: new ort.Tensor("float32", batch, [windowData.length, windowFrames, bins, 1]),
        });
        const all = result[names.embOut]!.data as Float32Array;
        const dims = all.length / windowData.length;
        let offset = 0;
        return windowsPerClip.map((count) => {
          const vectors = Array.from({ length: count }, (_, w) => all.slice((offset + w) * dims, (offset + w + 1) * dims));
          offset += count;
          return meanPool(vectors);
        });
      },
    };
  },
};
