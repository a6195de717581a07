import { Prisma } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { markAssetFailed, markAssetProcessing, markAssetReady, recordAssetMedia } from "../../assets/asset-records.ts";
import { withIndexedText } from "../../assets/asset-text.ts";
import { relayProjectEvents } from "../../queue/project-events.ts";
import { subscribedSql } from "../../webhooks/webhook-subscriptions.ts";
import { inSpan } from "../../observability/tracing.ts";
import type { JobHandler } from "../job-handler.ts";
import type { IngestState } from "../ingest/ingest-stage.ts";
import { ingestStages } from "../ingest/ingest-stages.ts";

/**
 * Whether the READY asset (`a`) is awaited: an `asset.ready` webhook subscription of its project, or an asset
 * trigger that may match it (tags are matched by the event's handler). Read in the READY statement, so what was
 * created before that commit gets the event.
 */
const ASSET_READY_LISTENED = Prisma.sql`(${subscribedSql(Prisma.sql`a."projectId"`, "asset.ready")} OR EXISTS (
  SELECT 1 FROM "WorkflowTrigger" t
  WHERE t."projectId" = a."projectId" AND t.kind = 'ASSET' AND NOT t.paused AND (t.modality IS NULL OR t.modality = a.modality)))`;

export const ingestHandler: JobHandler<"ingest"> = {
  async run({ assetId, projectId }, context) {
    const { app, tracker } = context;
    const processing = await markAssetProcessing(app.db, projectId, assetId);
    if (!processing) throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${assetId} no longer exists`);
    const { asset, embeddingRecords } = processing;
    const state: IngestState = { derivedText: [], vectors: [], hadEmbeddings: embeddingRecords > 0 };
    try {
      for (const [index, stage] of ingestStages.entries()) {
        // A span per stage (decode, encode, index): the asset's id and modality, never its content.
        await inSpan(`ingest.${stage.name}`, { "tessera.asset.id": asset.id, "tessera.asset.modality": asset.modality }, () => stage.run(asset, state, context));
        await tracker.progress((index + 1) / ingestStages.length, stage.name);
      }
    } catch (error) {
      // What decoding found is kept on a failed asset too (the success path writes it with READY, below).
      if (state.media) await recordAssetMedia(app.db, asset.id, state.media);
      throw error;
    }
    // The text the asset was indexed by (chunks, OCR lines, transcript, speech segments) is kept for `Asset.text`.
    const media = withIndexedText(state.media, [...(state.text?.chunks ?? []), ...state.derivedText]);
    const ready = await markAssetReady(app.db, asset.id, media, ASSET_READY_LISTENED);
    if (!ready) {
      // deleteAsset ran while this job worked: take back the vectors the index stage wrote.
      await app.vectorStore.deleteAsset(asset.projectId, asset.id);
      throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${asset.id} was deleted while it was being ingested`);
    }
    // Asset triggers and `asset.ready` webhooks hang off this event, not off this handler. It is written (with READY)
    // only when the project has one of them: a project-event job costs the queue an add, a fetch and a completion, and
    // its handler row reads, for every asset of every project, most of which listen for nothing.
    if (ready.listened) await relayProjectEvents(app, { subjectId: asset.id });
    return { output: { assetId: asset.id, stages: ingestStages.map((stage) => stage.name) } };
  },
  async onFinalFailure({ assetId }, error, app) {
    await markAssetFailed(app.db, assetId, error as Prisma.InputJsonValue);
  },
};
