import { z } from "zod";
import { runGenerationStep } from "./generation-step-support.ts";
import { defineStepType } from "./step-type.ts";

/** Describes an image (or a video's first sampled frame) in words. */
export const generateCaptionStep = defineStepType({
  uses: "generate.caption",
  description: "Caption an IMAGE or VIDEO asset with a vision model (alias caption.default, else llm.vision).",
  with: z
    .object({
      asset: z.uuid(),
      prompt: z.string().optional().describe("An instruction, e.g. 'Name every object you see.'"),
      model: z.string().optional(),
    })
    .strict(),
  output: z.object({ text: z.string(), model: z.string() }).strict(),
  async run(input, context) {
    const output = await runGenerationStep({ task: "CAPTION", prompt: input.prompt, model: input.model, attachments: [input.asset] }, context);
    if (output.task !== "CAPTION") throw new Error("generation returned another task's output");
    return { text: output.text, model: output.model };
  },
});
