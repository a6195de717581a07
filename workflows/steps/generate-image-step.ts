import { z } from "zod";
import { runGenerationStep } from "./generation-step-support.ts";
import { defineStepType } from "./step-type.ts";

/** Draws a prompt through an OpenAI-compatible images endpoint into a new IMAGE asset, ingested like any upload. */
export const generateImageStep = defineStepType({
  uses: "generate.image",
  description: "Generate an image from a prompt into a new IMAGE asset (alias image.default).",
  with: z
    .object({
      prompt: z.string().min(1),
      size: z.string().regex(/^\d{2,5}x\d{2,5}$/).optional(),
      model: z.string().optional(),
    })
    .strict(),
  output: z.object({ assetId: z.string(), ingestJobId: z.string(), mimeType: z.string(), model: z.string() }).strict(),
  async run(input, context) {
    const output = await runGenerationStep({ task: "IMAGE", ...input }, context);
    if (output.task !== "IMAGE") throw new Error("generation returned another task's output");
    return { assetId: output.assetId, ingestJobId: output.ingestJobId, mimeType: output.mimeType, model: output.model };
  },
});
