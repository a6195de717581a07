import { z } from "zod";
import { runGenerationStep } from "./generation-step-support.ts";
import { defineStepType } from "./step-type.ts";

/** The alias a question about an image goes to when the step names none: a captioner may not read questions. */
export const VQA_DEFAULT_ALIAS = "llm.vision";

/** Answers a question about an image (or a video's first sampled frame) with a vision-language model. */
export const generateVqaStep = defineStepType({
  uses: "generate.vqa",
  description: "Ask a vision-language model (alias llm.vision unless `model` names one) a question about an IMAGE or VIDEO asset.",
  with: z
    .object({
      asset: z.uuid(),
      question: z.string().trim().min(1).max(10_000).describe("e.g. 'What does the sign say?' (Florence-2 takes task prompts such as '<OCR>')"),
      model: z.string().optional(),
    })
    .strict(),
  output: z.object({ text: z.string(), model: z.string() }).strict(),
  async run(input, context) {
    const output = await runGenerationStep({ task: "CAPTION", prompt: input.question, model: input.model ?? VQA_DEFAULT_ALIAS, attachments: [input.asset] }, context);
    if (output.task !== "CAPTION") throw new Error("generation returned another task's output");
    return { text: output.text, model: output.model };
  },
});
