import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { AppContext } from "../app/app-context.ts";
import { Prisma, constraintViolation, type Asset, type Job, type Modality } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

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

/** A retried request with the same idempotency key gets the first result back. */
export async function findIngestByIdempotencyKey(app: AppContext, projectId: string, key: string) {
  const job = await app.db.job.findUnique({
    where: { projectId_idempotencyKey: { projectId, idempotencyKey: key } },
    include: { asset: true },
  });
  if (!job) return null;
  if (!job.asset) throw new TesseraError(ErrorCode.CONFLICT, "this idempotency key was used for another operation");
  return { asset: job.asset, job };
}

/**
 * Stores the bytes, records the asset and its ingest job, and enqueues the job.
 * The same bytes in one project are one asset. If any step fails, nothing the
 * call wrote stays behind: no row, no orphaned blob, no queued job.
 */
export async function ingestContent(
  app: AppContext,
  projectId: string,
  content: IngestContent,
  options: IngestOptions = {},
  prepare?: (blob: { sha256: string; byteSize: number }) => Promise<Partial<IngestContent> | void>,
): Promise<IngestResult> {
  if (options.idempotencyKey) {
    const previous = await findIngestByIdempotencyKey(app, projectId, options.idempotencyKey);
    if (previous) return previous;
  }

  const blob = await app.blobs.put(content.bytes, { maxBytes: app.config.MAX_UPLOAD_BYTES });
  let created: IngestResult | undefined;
  try {
    const decided = { ...content, ...((await prepare?.(blob)) ?? {}) };
    const recorded = await recordAssetAndJob(app, projectId, blob, decided, options);
    // The same bytes are already an asset of this project, with its job: that is the answer.
    if (!recorded.created) return recorded.result;
    created = recorded.result;
    await app.queues.enqueue(
      "ingest",
      { jobId: created.job.id, projectId, assetId: created.asset.id },
      { jobId: created.job.id },
    );
    return created;
  } catch (error) {
    if (created) await undoIngest(app, created);
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
 * New content (the common case) is one transaction writing the asset and its
 * job, without a lookup first. Only when the
 * unique constraints say the bytes (or the idempotency key) are already known
 * is the existing asset read: returned as it is, or, if it FAILED, retried in
 * place so the project keeps one asset per content.
 */
async function recordAssetAndJob(
  app: AppContext,
  projectId: string,
  blob: { sha256: string; byteSize: number },
  content: IngestContent,
  options: IngestOptions,
): Promise<{ created: boolean; result: IngestResult }> {
  const assetData = {
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
  // The retry of a failed asset (below) still goes through Prisma's model API: it is rare.
  const jobData = (assetId: string) => ({
    projectId,
    kind: "INGEST" as const,
    idempotencyKey: options.idempotencyKey,
    input: { assetId } as Prisma.InputJsonValue,
  });
  try {
    return { created: true, result: await insertAssetWithJob(app, projectId, blob.sha256, assetData, options.idempotencyKey) };
  } catch (error) {
    // Another request (earlier, or racing this one) stored the same bytes or used the same key.
    if (constraintViolation(error) !== "unique") throw error;
  }
  const known = await knownIngest(app, projectId, blob.sha256, options.idempotencyKey);
  if (known.job && (known.byKey || known.asset.status !== "FAILED")) return { created: false, result: { asset: known.asset, job: known.job } };
  const existing = known.asset;
  try {
    const result = await app.db.$transaction(async (tx) => {
      // A failed asset is retried in place, so the project keeps one asset per content.
      const retried = await tx.asset.update({ where: { id: existing.id }, data: { ...assetData, status: "PENDING", error: Prisma.DbNull } });
      const job = await tx.job.create({ data: { ...jobData(existing.id), assetId: existing.id } });
      return { asset: retried, job };
    }, { maxWait: 10_000, timeout: 20_000 });
    return { created: true, result };
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
  app: AppContext,
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

/**
 * New content's Asset and INGEST Job rows in one statement: it is atomic by itself, so no
 * transaction is opened (an interactive one cost about 4 ms of the event loop per upload, most of
 * it Prisma compiling two creates). Every column is set here, so the rows are returned as written.
 */
async function insertAssetWithJob(
  app: AppContext,
  projectId: string,
  sha256: string,
  data: Pick<Asset, "modality" | "mimeType" | "byteSize" | "source"> & {
    sourceUrl?: string;
    filename?: string;
    metadata: Prisma.InputJsonValue;
    tags: string[];
    media: Prisma.InputJsonValue;
  },
  idempotencyKey: string | undefined,
): Promise<IngestResult> {
  // timestamp(3) keeps milliseconds, as Date does; the ISO string's zone is UTC, as Prisma stores DateTime.
  const now = new Date();
  const at = Prisma.sql`${now.toISOString()}::timestamp`;
  const asset: Asset = {
    id: randomUUID(),
    projectId,
    modality: data.modality,
    sha256,
    mimeType: data.mimeType,
    byteSize: data.byteSize,
    status: "PENDING",
    source: data.source,
    sourceUrl: data.sourceUrl ?? null,
    filename: data.filename ?? null,
    // What jsonb gives back: undefined members dropped.
    metadata: JSON.parse(JSON.stringify(data.metadata)),
    tags: data.tags,
    media: JSON.parse(JSON.stringify(data.media)),
    error: null,
    createdAt: now,
    updatedAt: now,
  };
  const job: Job = {
    id: randomUUID(),
    projectId,
    kind: "INGEST",
    status: "QUEUED",
    progress: 0,
    input: { assetId: asset.id },
    output: null,
    error: null,
    attempts: 0,
    usage: null,
    assetId: asset.id,
    idempotencyKey: idempotencyKey ?? null,
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
  };
  await app.db.$executeRaw`
    WITH asset AS (
      INSERT INTO "Asset" (id, "projectId", modality, sha256, "mimeType", "byteSize", status, source, "sourceUrl", filename, metadata, tags, media, "createdAt", "updatedAt")
      VALUES (${asset.id}, ${projectId}, ${asset.modality}::"Modality", ${sha256}, ${asset.mimeType}, ${asset.byteSize}, 'PENDING', ${asset.source},
        ${asset.sourceUrl}, ${asset.filename}, ${JSON.stringify(asset.metadata)}::jsonb, ${asset.tags}::text[], ${JSON.stringify(asset.media)}::jsonb, ${at}, ${at})
      RETURNING id
    )
    INSERT INTO "Job" (id, "projectId", kind, status, progress, input, attempts, "assetId", "idempotencyKey", "createdAt", "updatedAt")
    SELECT ${job.id}, ${projectId}, 'INGEST', 'QUEUED', 0, ${JSON.stringify(job.input)}::jsonb, 0, asset.id, ${job.idempotencyKey}, ${at}, ${at} FROM asset`;
  return { asset, job };
}

async function undoIngest(app: AppContext, result: IngestResult) {
  await app.db.job.delete({ where: { id: result.job.id } }).catch(() => {});
  const otherJobs = await app.db.job.count({ where: { assetId: result.asset.id } });
  if (otherJobs === 0) await app.db.asset.delete({ where: { id: result.asset.id } }).catch(() => {});
}

/** Blobs are shared by content across projects: delete only when no asset points at one. */
export async function deleteBlobIfUnreferenced(app: AppContext, sha256: string) {
  const references = await app.db.asset.count({ where: { sha256 } });
  if (references === 0) await app.blobs.delete(sha256);
}
