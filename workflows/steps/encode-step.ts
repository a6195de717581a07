import { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { defineStepType } from "./step-type.ts";

/**
 * Embeds text into every vector space the served models reach, or returns an
 * asset's stored vectors (mean per space), for steps that compare or store them.
 */
export const encodeStep = defineStepType({
  uses: "encode",
  description: "Embed `text` (every space text reaches), or give an asset's stored vectors (`asset`, mean per space).",
  with: z
    .object({
      text: z.string().min(1).optional(),
      asset: z.uuid().optional(),
    })
    .strict()
    .refine((input) => (input.text === undefined) !== (input.asset === undefined), { message: "give exactly one of text or asset" }),
  output: z
    .object({
      vectors: z.array(z.object({ space: z.string(), model: z.string(), vector: z.array(z.number()) })),
    })
    .strict(),
  async run(input, context) {
    const { app, projectId } = context;
    if (input.text !== undefined) {
      const spaces = await app.models.embedText([input.text]);
      const vectors = spaces.filter((space) => space.vectors[0]).map((space) => ({ space: space.space, model: space.model, vector: Array.from(space.vectors[0]!) }));
      if (!vectors.length) throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, "no model embeds text: add an embedding model to the models folder");
      return { vectors };
    }
    const asset = await app.db.asset.findFirst({ where: { id: input.asset!, projectId }, select: { id: true } });
    if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${input.asset} in this project`);
    const stored = await app.vectorStore.vectorsOf(projectId, asset.id);
    if (!stored.length) throw new TesseraError(ErrorCode.CONFLICT, `asset ${asset.id} has no vectors yet`);
    const bySpace = new Map<string, { model: string; sum: number[]; count: number }>();
    for (const { space, model, vector } of stored) {
      const entry = bySpace.get(space) ?? { model, sum: new Array<number>(vector.length).fill(0), count: 0 };
      vector.forEach((value, index) => (entry.sum[index]! += value));
      entry.count++;
      bySpace.set(space, entry);
    }
    return {
      vectors: [...bySpace].map(([space, { model, sum }]) => {
        const norm = Math.hypot(...sum) || 1;
        return { space, model, vector: sum.map((value) => value / norm) };
      }),
    };
  },
});
