import { randomUUID } from "node:crypto";
import { Prisma, SQL_UTC_NOW, constraintViolation } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import type { VectorRecord } from "../../search/vector-store.ts";
import type { IngestStage } from "./ingest-stage.ts";
import { writeVectors } from "./vector-writes.ts";

/** BM25 text attached to a whole-asset vector; a book's worth is plenty. */
const MAX_DERIVED_TEXT_CHARS = 20_000;

/**
 * The last ingest stage: every vector the encoders made goes into the vector
 * store with its text (a text chunk's own words; for image, audio and video
 * vectors, the OCR lines and transcripts the asset yielded), tags and
 * metadata, under the asset's project, after the AssetEmbedding records that
 * say which spaces and models it has. Re-running it rewrites the same ids.
 */
export const indexStage: IngestStage = {
  name: "index",
  async run(asset, state, { app }) {
    if (state.vectors.length === 0) return;
    const derivedText = state.derivedText
      .map((span) => span.text.trim())
      .filter(Boolean)
      .join("\n")
      .slice(0, MAX_DERIVED_TEXT_CHARS);
    const metadata = asset.metadata && typeof asset.metadata === "object" && !Array.isArray(asset.metadata) ? asset.metadata : {};
    const records: VectorRecord[] = state.vectors.map((vector) => ({
      assetId: asset.id,
      space: vector.space,
      chunk: vector.chunk,
      vector: vector.vector,
      model: vector.model,
      modality: asset.modality,
      text: vector.text ?? derivedText,
      tags: asset.tags,
      metadata: metadata as Record<string, unknown>,
    }));
    const embeddings = new Map<string, { space: string; model: string; dimensions: number; vectors: number }>();
    for (const record of records) {
      const key = `${record.space}\u0000${record.model}`;
      const entry = embeddings.get(key) ?? { space: record.space, model: record.model, dimensions: record.vector.length, vectors: 0 };
      entry.vectors++;
      embeddings.set(key, entry);
    }
    // The records first, the vectors after: an asset without embedding records has no vectors anywhere, so a
    // new asset (the ingest handler says so in state.hadEmbeddings) skips the vector store's count below.
    // One statement for every space (an UPSERT per record through Prisma's model API cost about 1 ms each).
    const rows = [...embeddings.values()].map(
      ({ space, model, dimensions, vectors }) => Prisma.sql`(${randomUUID()}, ${asset.id}, ${space}, ${model}, ${dimensions}, ${vectors}, ${SQL_UTC_NOW})`,
    );
    try {
      if (rows.length > 0) {
        await app.db.$executeRaw`
          INSERT INTO "AssetEmbedding" (id, "assetId", space, model, dimensions, vectors, "createdAt") VALUES ${Prisma.join(rows)}
          ON CONFLICT ("assetId", space, model) DO UPDATE SET dimensions = EXCLUDED.dimensions, vectors = EXCLUDED.vectors`;
      }
    } catch (error) {
      // The asset row is gone (its foreign key fails): deleteAsset ran while this job encoded.
      if (constraintViolation(error) === "foreign-key") {
        throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${asset.id} was deleted while it was being ingested`);
      }
      throw error;
    }
    // A re-ingest that yields fewer chunks must not leave the old extra ones behind.
    if (state.hadEmbeddings !== false) {
      const before = await app.vectorStore.count(asset.projectId, { assetId: asset.id });
      if (before > 0 && before !== records.length) await app.vectorStore.deleteAsset(asset.projectId, asset.id);
    }
    await writeVectors(app.vectorStore, asset.projectId, records, { allNew: state.hadEmbeddings === false });
    // If deleteAsset runs from here on, the ingest handler's final update finds no row and takes the vectors back.
  },
};
