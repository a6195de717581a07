import type { Config } from "../core/config.ts";
import type { Asset, Database } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { checkConcurrentJobs, type QuotaHost } from "../limits/project-quotas.ts";
import type { JobQueues } from "../queue/job-queues.ts";
import { requeueAssetIngest, undoRequeueAssetIngest, type AssetWithJob } from "./asset-records.ts";
import type { BlobStore } from "./blob-store.ts";

/** What re-indexing needs of the process; an AppContext is one. */
export type ReindexDependencies = {
  db: Database;
  blobs: Pick<BlobStore, "has">;
  queues: Pick<JobQueues, "enqueue">;
  logger: Logger;
  config: Pick<Config, "QUOTA_CONCURRENT_JOBS"> & QuotaHost["config"];
};

/** An ingest of these may be queued again; PENDING and PROCESSING ones already have theirs. */
const REINDEXABLE = ["FAILED", "READY"] as const satisfies ReadonlyArray<Asset["status"]>;

/**
 * Queues a new ingest of a FAILED or READY asset from the bytes the blob store kept (decode,
 * encode and index again; the index stage rewrites the same vector ids), e.g. after a vector-store
 * outage outlasted the retries. The asset goes back to PENDING with a new job.
 */
export async function reindexAsset(app: ReindexDependencies, projectId: string, assetId: string): Promise<AssetWithJob> {
  const asset = await app.db.asset.findFirst({ where: { id: assetId, projectId } });
  if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${assetId} in this project`);
  if (!(REINDEXABLE as ReadonlyArray<string>).includes(asset.status)) {
    throw new TesseraError(ErrorCode.CONFLICT, `asset ${assetId} is ${asset.status}: an ingest of it is already queued or running`, {
      status: asset.status,
    });
  }
  if (!(await app.blobs.has(asset.sha256))) {
    throw new TesseraError(
      ErrorCode.NOT_FOUND,
      `the stored bytes of asset ${assetId} (sha256 ${asset.sha256}) are gone from the blob store, so it cannot be indexed again; ingest the file again`,
      { assetId, sha256: asset.sha256, missing: "blob" },
    );
  }
  await checkConcurrentJobs(app, projectId);
  const requeued = await requeueAssetIngest(app.db, projectId, assetId, REINDEXABLE);
  if (!requeued) throw new TesseraError(ErrorCode.CONFLICT, `asset ${assetId} was queued for ingest by another request meanwhile`);
  try {
    await app.queues.enqueue("ingest", { jobId: requeued.job.id, projectId, assetId }, { jobId: requeued.job.id });
  } catch (error) {
    await undoRequeueAssetIngest(app.db, requeued, asset);
    app.logger.error({ err: error, assetId }, "could not enqueue the re-index job");
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the job queue is unavailable; the asset is unchanged, retry later");
  }
  return requeued;
}
