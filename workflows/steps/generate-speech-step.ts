import { z } from "zod";
import { MAX_SPEECH_CHARS } from "../../services/generation/generate-request.ts";
import { runGenerationStep } from "./generation-step-support.ts";
import { defineStepType } from "./step-type.ts";

/** Speaks text into a new AUDIO asset, which goes through ingest like any upload. */
export const generateSpeechStep = defineStepType({
  uses: "generate.speech",
  description: "Speak text into a new AUDIO asset (alias speech.default: espeak-ng offline, or an ONNX TTS export).",
  with: z
    .object({
      text: z.string().min(1).max(MAX_SPEECH_CHARS),
      voice: z.string().optional(),
      model: z.string().optional(),
    })
    .strict(),
  output: z.object({ assetId: z.string(), ingestJobId: z.string(), mimeType: z.string(), durationSec: z.number(), model: z.string() }).strict(),
  async run(input, context) {
    const output = await runGenerationStep({ task: "SPEECH", prompt: input.text, voice: input.voice, model: input.model }, context);
    if (output.task !== "SPEECH") throw new Error("generation returned another task's output");
    return { assetId: output.assetId, ingestJobId: output.ingestJobId, mimeType: output.mimeType, durationSec: output.durationSec ?? 0, model: output.model };
  },
});
