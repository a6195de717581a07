import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import type { Config } from "../core/config.ts";
import { constraintViolation, type Asset, type Database, type Job, type Modality, type Prisma } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { storeWithinIngestQuotas, type QuotaHost } from "../limits/project-quotas.ts";
import type { JobQueues } from "../queue/job-queues.ts";
import { createAssetWithJob, discardIngest, retryFailedAsset, type AssetFields } from "./asset-records.ts";
import type { BlobStore, StoredBlob } from "./blob-store.ts";

export type IngestContent = {
  bytes: Readable | Uint8Array;
  modality: Modality;
  mimeType: string;
  source: "upload" | "url" | "text";
  sourceUrl?: string;
  filename?: string;
  media?: Record<string, unknown>;
};

export type IngestOptions = {
  metadata?: Record<string, unknown>;
  tags?: string[];
  idempotencyKey?: string;
};

export type IngestResult = { asset: Asset; job: Job };

/** What an ingest needs of the process; an AppContext is one. */
export type IngestDependencies = {
  db: Database;
  blobs: BlobStore;
  queues: Pick<JobQueues, "enqueue">;
  logger: Logger;
  config: Pick<Config, "MAX_UPLOAD_BYTES"> & QuotaHost["config"];
};

/** A retried request with the same idempotency key gets the first result back. */
export async function findIngestByIdempotencyKey(app: { db: Database }, projectId: string, key: string) {
  const job = await app.db.job.findUnique({
    where: { projectId_idempotencyKey: { projectId, idempotencyKey: key } },
    include: { asset: true },
  });
  if (!job) return null;
  if (!job.asset) throw new TesseraError(ErrorCode.CONFLICT, "this idempotency key was used for another operation");
  return { asset: job.asset, job };
}

/** What a reused idempotency key with other content gets: nothing is stored, the first asset is named. */
export function idempotencyConflict(key: string, assetId: string) {
  return new TesseraError(
    ErrorCode.IDEMPOTENCY_CONFLICT,
    `idempotency key "${key}" was already used for other content (asset ${assetId}); nothing of this request was stored: use a new key for new content`,
    { assetId },
  );
}

async function sha256Of(bytes: Readable | Uint8Array, maxBytes: number): Promise<string> {
  const hash = createHash("sha256");
  if (!(bytes instanceof Readable)) return hash.update(bytes).digest("hex");
  let size = 0;
  for await (const chunk of bytes) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      bytes.destroy();
      throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `content is larger than the limit of ${maxBytes} bytes`);
    }
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

/**
 * Stores the bytes, records the asset and its ingest job, and enqueues the job.
 * `prepare` decides what the stored bytes are before any row is written; with
 * `store.keepEnds` it gets their first and last bytes as they streamed by.
 * The same bytes in one project are one asset. If any step fails, nothing the
 * call wrote stays behind: no row, no orphaned blob, no queued job.
 */
export async function ingestContent(
  app: IngestDependencies,
  projectId: string,
  content: IngestContent,
  options: IngestOptions = {},
  prepare?: (blob: StoredBlob) => Promise<Partial<IngestContent> | void>,
  store: { keepEnds?: number } = {},
): Promise<IngestResult> {
  if (options.idempotencyKey) {
    const previous = await findIngestByIdempotencyKey(app, projectId, options.idempotencyKey);
    if (previous) {
      // A retry gets the first answer; other content under the same key is a mistake the caller must hear of.
      // The bytes are hashed as they stream by, never stored.
      const sha256 = await sha256Of(content.bytes, app.config.MAX_UPLOAD_BYTES);
      if (sha256 !== previous.asset.sha256) throw idempotencyConflict(options.idempotencyKey, previous.asset.id);
      return previous;
    }
  }

  const blob = await storeWithinIngestQuotas(app, projectId, app.config.MAX_UPLOAD_BYTES, (maxBytes) => app.blobs.put(content.bytes, { maxBytes, keepEnds: store.keepEnds }));
  let created: IngestResult | undefined;
  try {
    const decided = { ...content, ...((await prepare?.(blob)) ?? {}) };
    const recorded = await recordAssetAndJob(app, projectId, blob, decided, options);
    if (!recorded.created) {
      // A request racing this one used the key first, for other bytes: this one's blob goes (below) and the caller is told.
      if (recorded.result.asset.sha256 !== blob.sha256) {
        throw new TesseraError(ErrorCode.IDEMPOTENCY_CONFLICT, "this idempotency key was used at the same time for other content; nothing of this request was stored", {
          assetId: recorded.result.asset.id,
        });
      }
      // The same bytes are already an asset of this project, with its job: that is the answer.
      return recorded.result;
    }
    created = recorded.result;
    await app.queues.enqueue(
      "ingest",
      { jobId: created.job.id, projectId, assetId: created.asset.id },
      { jobId: created.job.id },
    );
    return created;
  } catch (error) {
    if (created) await discardIngest(app.db, created);
    await deleteBlobIfUnreferenced(app, blob.sha256);
    if (error instanceof TesseraError) throw error;
    if (created) {
      app.logger.error({ err: error }, "could not enqueue the ingest job");
      throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the job queue is unavailable; nothing was stored, retry later");
    }
    // The client sees "Unexpected error."; the log keeps what happened.
    app.logger.error({ err: error, projectId, sha256: blob.sha256 }, "ingest failed unexpectedly");
    throw error;
  }
}

/**
 * New content (the common case) is one statement writing the asset and its
 * job, without a lookup first. Only when the
 * unique constraints say the bytes (or the idempotency key) are already known
 * is the existing asset read: returned as it is, or, if it FAILED, retried in
 * place so the project keeps one asset per content.
 */
async function recordAssetAndJob(
  app: { db: Database },
  projectId: string,
  blob: { sha256: string; byteSize: number },
  content: IngestContent,
  options: IngestOptions,
): Promise<{ created: boolean; result: IngestResult }> {
  const assetData: AssetFields = {
    modality: content.modality,
    mimeType: content.mimeType,
    byteSize: blob.byteSize,
    source: content.source,
    sourceUrl: content.sourceUrl,
    filename: content.filename,
    metadata: (options.metadata ?? {}) as Prisma.InputJsonValue,
    tags: options.tags ?? [],
    media: (content.media ?? {}) as Prisma.InputJsonValue,
  };
  try {
    return { created: true, result: await createAssetWithJob(app.db, projectId, blob.sha256, assetData, options.idempotencyKey) };
  } catch (error) {
    // Another request (earlier, or racing this one) stored the same bytes or used the same key.
    if (constraintViolation(error) !== "unique") throw error;
  }
  const known = await knownIngest(app, projectId, blob.sha256, options.idempotencyKey);
  if (known.job && (known.byKey || known.asset.status !== "FAILED")) return { created: false, result: { asset: known.asset, job: known.job } };
  try {
    return { created: true, result: await retryFailedAsset(app.db, projectId, known.asset.id, assetData, options.idempotencyKey) };
  } catch (error) {
    // Two requests raced to retry the same failed asset, or with the same key: the first one wins.
    if (constraintViolation(error) === "unique") {
      const latest = await knownIngest(app, projectId, blob.sha256, options.idempotencyKey);
      if (latest.job) return { created: false, result: { asset: latest.asset, job: latest.job } };
    }
    throw error;
  }
}

/**
 * What the project already has when a write hit a unique constraint: the first result of the same
 * idempotency key (`byKey`), else the asset with these bytes and its latest job.
 */
async function knownIngest(
  app: { db: Database },
  projectId: string,
  sha256: string,
  idempotencyKey: string | undefined,
): Promise<{ asset: Asset; job?: Job; byKey: boolean }> {
  if (idempotencyKey) {
    const previous = await findIngestByIdempotencyKey(app, projectId, idempotencyKey);
    if (previous) return { ...previous, byKey: true };
  }
  const { jobs, ...asset } = await app.db.asset.findUniqueOrThrow({
    where: { projectId_sha256: { projectId, sha256 } },
    include: { jobs: { orderBy: { createdAt: "desc" }, take: 1 } },
  });
  return { asset, job: jobs[0], byKey: false };
}

/** Blobs are shared by content across projects: delete only when no asset points at one. */
export async function deleteBlobIfUnreferenced(app: { db: Database; blobs: BlobStore }, sha256: string) {
  const references = await app.db.asset.count({ where: { sha256 } });
  if (references === 0) await app.blobs.delete(sha256);
}
