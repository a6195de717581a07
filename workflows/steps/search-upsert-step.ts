import { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import type { VectorRecord } from "../../services/search/vector-store.ts";
import { defineStepType } from "./step-type.ts";

/** Chunk numbers of workflow-written text start here, clear of the ingest pipeline's own chunks. */
const WORKFLOW_CHUNK_BASE = 1_000_000;

/** A stable chunk number per key (FNV-1a): writing the same key again replaces the vectors, never duplicates them. */
function chunkOf(key: string): number {
  let hash = 0x811c9dc5;
  for (const char of key) hash = Math.imul(hash ^ char.codePointAt(0)!, 0x01000193) >>> 0;
  return WORKFLOW_CHUNK_BASE + (hash % 1_000_000);
}

/**
 * Indexes text for an asset: a caption, a transcript summary, notes. The text
 * is embedded into every space text reaches and stored as vectors of that
 * asset, so `search` finds the asset by it (vectors and BM25).
 */
export const searchUpsertStep = defineStepType({
  uses: "search.upsert",
  description: "Index `text` as searchable text of `asset` (embedded into every text space); the same `key` replaces, never duplicates.",
  with: z
    .object({
      asset: z.uuid(),
      text: z.string().min(1),
      key: z.string().min(1).optional().describe("Identifies this text among the asset's workflow-written texts; default: the step id."),
    })
    .strict(),
  output: z.object({ assetId: z.string(), spaces: z.array(z.string()), chunk: z.number().int() }).strict(),
  async run(input, context) {
    const { app, projectId } = context;
    const asset = await app.db.asset.findFirst({ where: { id: input.asset, projectId } });
    if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${input.asset} in this project`);
    const spaces = await app.models.embedText([input.text]);
    const chunk = chunkOf(input.key ?? context.stepId);
    const metadata = asset.metadata && typeof asset.metadata === "object" && !Array.isArray(asset.metadata) ? (asset.metadata as Record<string, unknown>) : {};
    const records: VectorRecord[] = spaces
      .filter((space) => space.vectors[0])
      .map((space) => ({
        assetId: asset.id,
        space: space.space,
        chunk,
        vector: space.vectors[0]!,
        model: space.model,
        modality: asset.modality,
        text: input.text,
        tags: asset.tags,
        metadata,
      }));
    if (!records.length) throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, "no model embeds text: add an embedding model to the models folder");
    await app.vectorStore.upsert(projectId, records);
    return { assetId: asset.id, spaces: records.map((record) => record.space), chunk };
  },
});
