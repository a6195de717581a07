import { z } from "zod";
import { modalitySchema as Modality } from "../../services/assets/modality.ts";
import { crossModalSearch, MAX_SEARCH_LIMIT } from "../../services/search/cross-modal-search.ts";
import { defineStepType } from "./step-type.ts";

/** Cross-modal search of the project's assets, as the `search` query does it. */
export const searchStep = defineStepType({
  uses: "search",
  description: "Search the project's assets by `text` or by an `asset` (cross-modal), with optional modality, tag and metadata filters.",
  with: z
    .object({
      text: z.string().min(1).optional(),
      asset: z.uuid().optional(),
      modalities: z.array(Modality).optional(),
      limit: z.number().int().min(1).max(MAX_SEARCH_LIMIT).default(10),
      alpha: z.number().min(0).max(1).optional().describe("Hybrid BM25 + vector ranking (text queries): 1 vectors only, 0 BM25 only."),
      tags: z.array(z.string()).optional(),
      metadata: z.record(z.string(), z.unknown()).optional(),
      spaceWeights: z
        .record(z.string(), z.number().min(0).max(100))
        .optional()
        .describe("Each vector space's vote in the rank fusion (default 1; 0 leaves a space out), e.g. { sentence: 1, image-text: 0.5 }."),
    })
    .strict()
    .refine((input) => (input.text === undefined) !== (input.asset === undefined), { message: "give exactly one of text or asset" }),
  output: z
    .object({
      hits: z.array(
        z.object({
          assetId: z.string(),
          modality: Modality,
          score: z.number(),
          snippet: z.string().nullable(),
          spaces: z.array(z.string()),
          segments: z.array(z.object({ start: z.number(), end: z.number(), text: z.string(), score: z.number() })).describe("Where in an audio or video hit a text query matched, in seconds."),
        }),
      ),
    })
    .strict(),
  async run(input, context) {
    const hits = await crossModalSearch(context.app.vectorStore, context.app.models, context.projectId, {
      query: input.text !== undefined ? { text: input.text } : { assetId: input.asset! },
      modalities: input.modalities,
      limit: input.limit,
      alpha: input.alpha,
      filter: { tags: input.tags, metadata: input.metadata },
      spaceWeights: input.spaceWeights,
      limits: context.app.config,
    }, context.app);
    return { hits };
  },
});
