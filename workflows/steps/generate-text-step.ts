import { z } from "zod";
import { runGenerationStep } from "./generation-step-support.ts";
import { defineStepType } from "./step-type.ts";

/** A language model answers a prompt, optionally about assets (images as images, audio and video as transcripts and frames). */
export const generateTextStep = defineStepType({
  uses: "generate.text",
  description: "Ask a language model (a model alias, default llm.default) to answer a prompt; attachments are asset ids of this project.",
  with: z
    .object({
      prompt: z.string().min(1),
      system: z.string().optional(),
      attachments: z.array(z.uuid()).max(16).default([]),
      model: z.string().optional().describe("A model alias such as llm.default or llm.vision."),
      maxTokens: z.number().int().positive().optional(),
      temperature: z.number().min(0).max(2).optional(),
    })
    .strict(),
  output: z.object({ text: z.string(), model: z.string(), finishReason: z.string().optional() }).strict(),
  async run(input, context) {
    const output = await runGenerationStep({ task: "TEXT", ...input }, context);
    if (output.task !== "TEXT") throw new Error("generation returned another task's output");
    return { text: output.text, model: output.model, ...(output.finishReason ? { finishReason: output.finishReason } : {}) };
  },
});
