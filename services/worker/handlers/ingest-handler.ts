import { Prisma } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import type { JobHandler } from "../job-handler.ts";
import type { IngestState } from "../ingest/ingest-stage.ts";
import { ingestStages } from "../ingest/ingest-stages.ts";

export const ingestHandler: JobHandler<"ingest"> = {
  async run({ assetId, projectId }, context) {
    const { app, tracker } = context;
    // One statement reads the asset (in its project), marks it PROCESSING and says whether it has embeddings yet.
    const { _count, ...asset } = await app.db.asset
      .update({ where: { id: assetId, projectId }, data: { status: "PROCESSING" }, include: { _count: { select: { embeddings: true } } } })
      .catch((error: unknown) => {
        if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") {
          throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${assetId} no longer exists`);
        }
        throw error;
      });
    const state: IngestState = { derivedText: [], vectors: [], hadEmbeddings: _count.embeddings > 0 };
    try {
      for (const [index, stage] of ingestStages.entries()) {
        await stage.run(asset, state, context);
        await tracker.progress((index + 1) / ingestStages.length, stage.name);
      }
    } catch (error) {
      // What decoding found is kept on a failed asset too (the success path writes it with READY, below).
      if (state.media) await app.db.asset.update({ where: { id: asset.id }, data: { media: state.media }, select: { id: true } }).catch(() => {});
      throw error;
    }
    const ready = await app.db.asset
      .update({
        where: { id: asset.id },
        data: { status: "READY", error: Prisma.DbNull, ...(state.media ? { media: state.media } : {}) },
        select: { id: true },
      })
      .catch((error: unknown) => {
        if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") return null;
        throw error;
      });
    if (!ready) {
      // deleteAsset ran while this job worked: take back the vectors the index stage wrote.
      await app.vectorStore.deleteAsset(asset.projectId, asset.id);
      throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${asset.id} was deleted while it was being ingested`);
    }
    return { output: { assetId: asset.id, stages: ingestStages.map((stage) => stage.name) } };
  },
  async onFinalFailure({ assetId }, error, app) {
    await app.db.asset.updateMany({ where: { id: assetId }, data: { status: "FAILED", error: error as Prisma.InputJsonValue } });
  },
};
