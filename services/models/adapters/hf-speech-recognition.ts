import fs from "node:fs";
import path from "node:path";
import { sessionTuning } from "../execution-provider.ts";
import type { ModelAdapter } from "../model-adapter.ts";
import { modelNotFound } from "../model-errors.ts";
import { fromExportFolder } from "./hf-transformers-env.ts";

/**
 * Speech to text from a Hugging Face ONNX export (Whisper, Moonshine) through
 * transformers.js' automatic-speech-recognition pipeline: 16 kHz mono PCM in,
 * text out; long clips are read in 30 s chunks.
 */
export const hfSpeechRecognitionAdapter: ModelAdapter = {
  embeds: [],
  requiredFiles: (model) => ["config.json", "onnx/encoder_model.onnx"].map((file) => path.join(model.files.dir!, file)),
  async load(model, context) {
    const folder = model.files.dir!;
    const encoder = path.join(folder, "onnx", "encoder_model.onnx");
    if (!fs.existsSync(encoder)) throw modelNotFound(model.manifest.name, `file ${encoder} is missing`, { file: encoder });
    const recognizer = await fromExportFolder(folder, (id, hf) =>
      hf.pipeline("automatic-speech-recognition", id, {
        local_files_only: true,
        device: context.execution.device,
        dtype: "fp32",
        session_options: sessionTuning(context.intraOpThreads),
      }),
    );
    return {
      async transcribe(clips) {
        const texts: string[] = [];
        // One clip at a time: the pipeline's own chunking handles long audio.
        for (const clip of clips) {
          const output = (await recognizer(clip, { chunk_length_s: 30, stride_length_s: 5 })) as { text: string } | Array<{ text: string }>;
          texts.push((Array.isArray(output) ? output.map((part) => part.text).join(" ") : output.text).trim());
        }
        return texts;
      },
      async close() {
        await recognizer.dispose();
      },
    };
  },
};
