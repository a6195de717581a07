import { Prisma } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import type { JobHandler } from "../job-handler.ts";
import type { IngestState } from "../ingest/ingest-stage.ts";
import { ingestStages } from "../ingest/ingest-stages.ts";

export const ingestHandler: JobHandler<"ingest"> = {
  async run({ assetId, projectId }, context) {
    const { app, tracker } = context;
    const asset = await app.db.asset.findFirst({ where: { id: assetId, projectId } });
    if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${assetId} no longer exists`);
    await app.db.asset.update({ where: { id: asset.id }, data: { status: "PROCESSING" } });
    const state: IngestState = { derivedText: [], vectors: [] };
    for (const [index, stage] of ingestStages.entries()) {
      await stage.run(asset, state, context);
      await tracker.progress((index + 1) / ingestStages.length, stage.name);
    }
    await app.db.asset.update({ where: { id: asset.id }, data: { status: "READY", error: Prisma.DbNull } });
    return { output: { assetId: asset.id, stages: ingestStages.map((stage) => stage.name) } };
  },
  async onFinalFailure({ assetId }, error, app) {
    await app.db.asset.updateMany({ where: { id: assetId }, data: { status: "FAILED", error: error as Prisma.InputJsonValue } });
  },
};
