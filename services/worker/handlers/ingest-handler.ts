import { Prisma, SQL_UTC_NOW, type Asset } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import type { JobHandler } from "../job-handler.ts";
import type { IngestState } from "../ingest/ingest-stage.ts";
import { ingestStages } from "../ingest/ingest-stages.ts";

export const ingestHandler: JobHandler<"ingest"> = {
  async run({ assetId, projectId }, context) {
    const { app, tracker } = context;
    // One statement reads the asset (in its project), marks it PROCESSING and says whether it has embeddings yet.
    const [row] = await app.db.$queryRaw<(Asset & { embeddingRecords: number })[]>`
      UPDATE "Asset" SET status = 'PROCESSING', "updatedAt" = ${SQL_UTC_NOW}
      WHERE id = ${assetId} AND "projectId" = ${projectId}
      RETURNING *, (SELECT count(*) FROM "AssetEmbedding" WHERE "assetId" = "Asset".id)::int AS "embeddingRecords"`;
    if (!row) throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${assetId} no longer exists`);
    const { embeddingRecords, ...asset } = row;
    const state: IngestState = { derivedText: [], vectors: [], hadEmbeddings: embeddingRecords > 0 };
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
    const ready = await app.db.$executeRaw`
      UPDATE "Asset" SET status = 'READY', error = NULL, "updatedAt" = ${SQL_UTC_NOW}${
        state.media ? Prisma.sql`, media = ${JSON.stringify(state.media)}::jsonb` : Prisma.empty
      }
      WHERE id = ${asset.id}`;
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
