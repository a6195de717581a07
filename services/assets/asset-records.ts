import { randomUUID } from "node:crypto";
import { Prisma, SQL_UTC_NOW, UTC_NOW, constraintViolation, preparedName, sql, type Asset, type Database, type Job } from "../core/database.ts";

/**
 * Every write of the Asset and AssetEmbedding tables, named for the moment in an asset's life it
 * records. The writes every ingest makes (created with its job, processing, ready, embeddings
 * recorded) are single statements straight on node-postgres (`sql`), the job's prepared: Prisma
 * compiles each call on the event loop, raw ones included (README, "The ingest path's row writes
 * are SQL"; bench/README.md, encode). The rare ones use the model API.
 */

export type AssetWithJob = { asset: Asset; job: Job };

/** The columns an ingest decides about an asset; the rest (id, status, timestamps) are set here. */
export type AssetFields = Pick<Asset, "modality" | "mimeType" | "byteSize" | "source"> & {
  sourceUrl?: string;
  filename?: string;
  metadata: Prisma.InputJsonValue;
  tags: string[];
  media: Prisma.InputJsonValue;
};

/**
 * New content's Asset and INGEST Job rows in one statement: it is atomic by itself, so no
 * transaction is opened (an interactive one cost about 4 ms of the event loop per upload, most of
 * it Prisma compiling two creates). Every column is set here, so the rows are returned as written.
 * A unique-constraint clash (same bytes, same idempotency key) throws, and writes nothing.
 */
export async function createAssetWithJob(
  db: Database,
  projectId: string,
  sha256: string,
  data: AssetFields,
  idempotencyKey: string | undefined,
): Promise<AssetWithJob> {
  // timestamp(3) keeps milliseconds, as Date does; the ISO string's zone is UTC, as Prisma stores DateTime.
  const now = new Date();
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
  // Straight on node-postgres (sql): through Prisma, even raw, the statement cost 1-3 ms of the event loop per upload.
  // Prepared: PostgreSQL parses and plans it once per connection, not on every upload.
  const at = now.toISOString();
  await sql(
    db,
    `WITH asset AS (
      INSERT INTO "Asset" (id, "projectId", modality, sha256, "mimeType", "byteSize", status, source, "sourceUrl", filename, metadata, tags, media, "createdAt", "updatedAt")
      VALUES ($1, $2, $3::"Modality", $4, $5, $6, 'PENDING', $7, $8, $9, $10::jsonb, $11::text[], $12::jsonb, $13::timestamp, $13::timestamp)
      RETURNING id
    )
    INSERT INTO "Job" (id, "projectId", kind, status, progress, input, attempts, "assetId", "idempotencyKey", "createdAt", "updatedAt")
    SELECT $14, $2, 'INGEST', 'QUEUED', 0, $15::jsonb, 0, asset.id, $16, $13::timestamp, $13::timestamp FROM asset`,
    [
      asset.id, projectId, asset.modality, sha256, asset.mimeType, asset.byteSize, asset.source, asset.sourceUrl, asset.filename,
      JSON.stringify(asset.metadata), asset.tags, JSON.stringify(asset.media), at, job.id, JSON.stringify(job.input), job.idempotencyKey,
    ],
    "tessera_asset_with_job",
  );
  return { asset, job };
}

/**
 * A FAILED asset ingested again is retried in place (the project keeps one asset per content):
 * back to PENDING with the new request's fields, and a new INGEST job. Rare, so the model API.
 */
export function retryFailedAsset(
  db: Database,
  projectId: string,
  assetId: string,
  data: AssetFields,
  idempotencyKey: string | undefined,
): Promise<AssetWithJob> {
  return db.$transaction(
    async (tx) => {
      const asset = await tx.asset.update({ where: { id: assetId }, data: { ...data, status: "PENDING", error: Prisma.DbNull } });
      const job = await tx.job.create({
        data: { projectId, kind: "INGEST", idempotencyKey, input: { assetId } as Prisma.InputJsonValue, assetId },
      });
      return { asset, job };
    },
    { maxWait: 10_000, timeout: 20_000 },
  );
}

/**
 * Re-indexing: an asset in one of `from` (FAILED, READY) goes back to PENDING with a new INGEST job,
 * in one statement, so two concurrent requests cannot both re-queue it. Undefined: the asset is not
 * in the project, or not in one of those states (an ingest of it is already queued or running).
 */
export async function requeueAssetIngest(
  db: Database,
  projectId: string,
  assetId: string,
  from: ReadonlyArray<Asset["status"]>,
): Promise<AssetWithJob | undefined> {
  const now = new Date();
  const at = Prisma.sql`${now.toISOString()}::timestamp`;
  const jobId = randomUUID();
  const [asset] = await db.$queryRaw<Asset[]>`
    WITH asset AS (
      UPDATE "Asset" SET status = 'PENDING', error = NULL, "updatedAt" = ${at}
      WHERE id = ${assetId} AND "projectId" = ${projectId} AND status::text IN (${Prisma.join(from)})
      RETURNING *
    ), job AS (
      INSERT INTO "Job" (id, "projectId", kind, status, progress, input, attempts, "assetId", "createdAt", "updatedAt")
      SELECT ${jobId}, ${projectId}, 'INGEST', 'QUEUED', 0, ${JSON.stringify({ assetId })}::jsonb, 0, asset.id, ${at}, ${at} FROM asset
    )
    SELECT * FROM asset`;
  if (!asset) return undefined;
  const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
  return { asset, job };
}

/** Takes back a re-queued ingest whose enqueue failed: the job goes, the asset gets its status and error back. */
export async function undoRequeueAssetIngest(db: Database, { asset, job }: AssetWithJob, previous: Pick<Asset, "status" | "error">) {
  await db.job.delete({ where: { id: job.id } }).catch(() => {});
  await db.asset.updateMany({
    where: { id: asset.id, status: "PENDING" },
    data: { status: previous.status, error: previous.error === null ? Prisma.DbNull : (previous.error as Prisma.InputJsonValue) },
  });
}

/** Takes back a job whose enqueue failed, and its asset unless another job (an earlier ingest) has it. */
export async function discardIngest(db: Database, { asset, job }: AssetWithJob) {
  await db.job.delete({ where: { id: job.id } }).catch(() => {});
  const otherJobs = await db.job.count({ where: { assetId: asset.id } });
  if (otherJobs === 0) await db.asset.delete({ where: { id: asset.id } }).catch(() => {});
}

/** The Asset row's columns by name: a prepared statement must not return `*` (services/core/database.ts, sql). */
const ASSET_COLUMNS = Object.values(Prisma.AssetScalarFieldEnum)
  .map((column) => `"${column}"`)
  .join(", ");

const MARK_PROCESSING = `UPDATE "Asset" SET status = 'PROCESSING', "updatedAt" = ${UTC_NOW}
  WHERE id = $1 AND "projectId" = $2
  RETURNING ${ASSET_COLUMNS}, (SELECT count(*) FROM "AssetEmbedding" WHERE "assetId" = "Asset".id)::int AS "embeddingRecords"`;

/**
 * One statement reads the asset (in its project), marks it PROCESSING and says whether it has
 * embedding records yet. Undefined: there is no such asset in the project.
 */
export async function markAssetProcessing(
  db: Database,
  projectId: string,
  assetId: string,
): Promise<{ asset: Asset; embeddingRecords: number } | undefined> {
  const [row] = await sql<Asset & { embeddingRecords: number }>(db, MARK_PROCESSING, [assetId, projectId], "tessera_asset_processing");
  if (!row) return undefined;
  const { embeddingRecords, ...asset } = row;
  return { asset, embeddingRecords };
}

/**
 * READY, with what decoding found when there is some, in one statement, which also answers `listened`
 * (SQL over the row as `a`: whether anything of the project waits for the asset to be ready) and, when it
 * is, writes the `asset.ready` event into the outbox in the same statement (services/queue/project-events.ts).
 * Undefined: the row is gone (deleteAsset ran while the asset was being ingested).
 */
export async function markAssetReady(
  db: Database,
  assetId: string,
  media?: Prisma.InputJsonValue,
  listened: Prisma.Sql = Prisma.sql`false`,
): Promise<{ listened: boolean } | undefined> {
  const statement = Prisma.sql`
    WITH ready AS (
      UPDATE "Asset" AS a SET status = 'READY', error = NULL, "updatedAt" = ${SQL_UTC_NOW}${
        media ? Prisma.sql`, media = ${JSON.stringify(media)}::jsonb` : Prisma.empty
      }
      WHERE a.id = ${assetId} RETURNING a.id, a."projectId", ${listened} AS listened),
    event AS (INSERT INTO "ProjectEventOutbox" ("projectId", type, "subjectId") SELECT "projectId", 'asset.ready', id FROM ready WHERE listened)
    SELECT listened FROM ready`;
  const [row] = await sql<{ listened: boolean }>(db, statement.text, statement.values, preparedName("tessera_asset_ready", statement.text));
  return row ? { listened: row.listened } : undefined;
}

/** What decoding found, kept on an asset whose ingest failed after it; a row gone meanwhile is no error. */
export async function recordAssetMedia(db: Database, assetId: string, media: Prisma.InputJsonValue) {
  await db.asset.update({ where: { id: assetId }, data: { media }, select: { id: true } }).catch(() => {});
}

/** The last attempt failed: the asset says why. */
export async function markAssetFailed(db: Database, assetId: string, error: Prisma.InputJsonValue) {
  await db.asset.updateMany({ where: { id: assetId }, data: { status: "FAILED", error } });
}

/** What the embedding records are made from: one entry per vector of the asset. */
export type EmbeddedVector = { space: string; model: string; vector: ArrayLike<number> };

/**
 * Which spaces and models an asset has vectors in, with their dimensions and counts: one
 * statement for every space (an upsert per record through the model API cost about 1 ms each).
 * False: the asset row is gone (its foreign key fails), as deleteAsset leaves it.
 */
export async function recordAssetEmbeddings(db: Database, assetId: string, vectors: readonly EmbeddedVector[]): Promise<boolean> {
  const embeddings = new Map<string, { space: string; model: string; dimensions: number; vectors: number }>();
  for (const { space, model, vector } of vectors) {
    const key = `${space}\u0000${model}`;
    const entry = embeddings.get(key) ?? { space, model, dimensions: vector.length, vectors: 0 };
    entry.vectors++;
    embeddings.set(key, entry);
  }
  if (embeddings.size === 0) return true;
  const rows = [...embeddings.values()];
  // One row per (space, model) the asset has vectors in, as arrays: the statement's text is the same for any number.
  try {
    await sql(
      db,
      `INSERT INTO "AssetEmbedding" (id, "assetId", space, model, dimensions, vectors, "createdAt")
      SELECT gen_random_uuid()::text, $1, e.space, e.model, e.dimensions, e.vectors, ${UTC_NOW}
      FROM unnest($2::text[], $3::text[], $4::int[], $5::int[]) AS e(space, model, dimensions, vectors)
      ON CONFLICT ("assetId", space, model) DO UPDATE SET dimensions = EXCLUDED.dimensions, vectors = EXCLUDED.vectors`,
      [assetId, rows.map((row) => row.space), rows.map((row) => row.model), rows.map((row) => row.dimensions), rows.map((row) => row.vectors)],
      "tessera_asset_embeddings",
    );
    return true;
  } catch (error) {
    if (constraintViolation(error) === "foreign-key") return false;
    throw error;
  }
}

/** The asset's row, in its project; its embedding records go with it (cascade), its jobs stay. */
export async function deleteAssetRow(db: Database, projectId: string, assetId: string) {
  await db.asset.deleteMany({ where: { id: assetId, projectId } });
}
