import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { recordAssetEmbeddings } from "../../assets/asset-records.ts";
import { readSpokenPhones } from "../../assets/asset-text.ts";
import type { VectorRecord } from "../../search/vector-store.ts";
import { indexSpokenPhones } from "../../search/spoken-index.ts";
import { retryThroughVectorStoreOutage } from "../../search/vector-store-outage.ts";
import type { JobHandlerContext } from "../job-handler.ts";
import type { IngestStage } from "./ingest-stage.ts";
import { writeVectors } from "./vector-writes.ts";

/** BM25 text attached to a whole-asset vector; a book's worth is plenty. */
const MAX_DERIVED_TEXT_CHARS = 20_000;
/** Records per write: a large asset goes to the store in bounded pieces, not as one request. */
const WRITE_SLICE = 1024;

/**
 * The last ingest stage: every vector the encoders made goes into the vector
 * store with its text (a text chunk's own words; for image, audio and video
 * vectors, the OCR lines and transcripts the asset yielded), tags and
 * metadata, under the asset's project, after the AssetEmbedding records that
 * say which spaces and models it has. Re-running it rewrites the same ids.
 * While the vector store cannot be reached, each call waits and tries again
 * (VECTOR_STORE_RETRY_MS in all) instead of failing the asset; BullMQ keeps
 * renewing the job's lock meanwhile, as it does for any running processor.
 */
export const indexStage: IngestStage = {
  name: "index",
  async run(asset, state, context) {
    const { app } = context;
    const throughOutage = <T>(what: string, call: (signal: AbortSignal) => Promise<T>) => untilVectorStoreAnswers(context, asset.id, what, call);
    // The phones heard in its speech, indexed for spoken search (a re-ingest replaces them).
    if (asset.modality === "AUDIO" || asset.modality === "VIDEO") await indexSpokenPhones(app.db, asset.projectId, asset.id, readSpokenPhones(state.media));
    if (state.vectors.length === 0) return;
    const limit = app.config.ASSET_MAX_VECTORS;
    if (state.vectors.length > limit) {
      throw new TesseraError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `the asset would write ${state.vectors.length} vectors; at most ${limit} are taken (ASSET_MAX_VECTORS)`,
        { variable: "ASSET_MAX_VECTORS", limit, actual: state.vectors.length },
      );
    }
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
    // The records first, the vectors after: an asset without embedding records has no vectors anywhere, so a
    // new asset (the ingest handler says so in state.hadEmbeddings) skips the vector store's count below.
    if (!(await recordAssetEmbeddings(app.db, asset.id, records))) {
      throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${asset.id} was deleted while it was being ingested`);
    }
    // A re-ingest that yields fewer chunks must not leave the old extra ones behind.
    if (state.hadEmbeddings !== false) {
      const before = await throughOutage("count", () => app.vectorStore.count(asset.projectId, { assetId: asset.id }));
      if (before > 0 && before !== records.length) await throughOutage("delete", () => app.vectorStore.deleteAsset(asset.projectId, asset.id));
    }
    for (let from = 0; from < records.length; from += WRITE_SLICE) {
      const slice = records.slice(from, from + WRITE_SLICE);
      // A try given up on leaves the shared write queues, so the next tries do not wait behind it.
      await throughOutage("write", (signal) => writeVectors(app.vectorStore, asset.projectId, slice, { allNew: state.hadEmbeddings === false, signal }));
    }
    // If deleteAsset runs from here on, the ingest handler's final update finds no row and takes the vectors back.
  },
};

/** One vector-store call of the index stage, retried through an outage; each wait is logged under the job. */
function untilVectorStoreAnswers<T>({ app, logger }: JobHandlerContext, assetId: string, what: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return retryThroughVectorStoreOutage(call, {
    budgetMs: app.config.VECTOR_STORE_RETRY_MS,
    maxWaitMs: app.config.VECTOR_STORE_RETRY_MAX_WAIT_MS,
    onRetry: (error, { attempt, waitMs, elapsedMs }) =>
      logger.warn({ err: error, assetId, call: what, attempt, waitMs, elapsedMs }, "vector store unreachable; indexing waits and retries"),
  });
}
