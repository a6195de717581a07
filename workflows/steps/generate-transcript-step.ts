import { z } from "zod";
import { runGenerationStep } from "./generation-step-support.ts";
import { defineStepType } from "./step-type.ts";

/** Speech to text of an audio or video asset. */
export const generateTranscriptStep = defineStepType({
  uses: "generate.transcript",
  description: "Transcribe an AUDIO or VIDEO asset (alias transcribe.default, else the worker's transcription model, else the built-in offline transcriber, pocketsphinx).",
  with: z.object({ asset: z.uuid(), model: z.string().optional() }).strict(),
  output: z.object({ text: z.string(), model: z.string() }).strict(),
  async run(input, context) {
    const output = await runGenerationStep({ task: "TRANSCRIPT", model: input.model, attachments: [input.asset] }, context);
    if (output.task !== "TRANSCRIPT") throw new Error("generation returned another task's output");
    return { text: output.text, model: output.model };
  },
});
