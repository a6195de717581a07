import type { Database } from "../core/database.ts";
import type { Logger } from "../core/logger.ts";
import type { BlobStore } from "./blob-store.ts";

/** Blobs asked about in one query. */
const BATCH = 500;

/**
 * Deletes blobs that no asset (of any project: blobs are content-addressed and shared) references and that were
 * last written more than `olderThanMs` ago. The age keeps an upload in flight safe: its bytes are stored before its
 * asset row is written. Left behind by a crash between storing and recording, or by a row deleted without its blob.
 * Returns how many were deleted.
 */
export async function removeOrphanBlobs(app: { db: Database; blobs: BlobStore; logger: Logger }, options: { olderThanMs: number }): Promise<number> {
  const since = new Date(Date.now() - options.olderThanMs);
  let removed = 0;
  let batch: string[] = [];
  const sweep = async () => {
    const referenced = new Set(
      (await app.db.asset.findMany({ where: { sha256: { in: batch } }, select: { sha256: true }, distinct: ["sha256"] })).map((row) => row.sha256),
    );
    for (const sha256 of batch) {
      if (referenced.has(sha256)) continue;
      const inUse = async () => (await app.db.asset.count({ where: { sha256 } })) > 0;
      if (await app.blobs.deleteUnlessWrittenSince(sha256, since, inUse)) removed++;
    }
    batch = [];
  };
  for await (const blob of app.blobs.list()) {
    if (blob.writtenAt >= since) continue;
    batch.push(blob.sha256);
    if (batch.length >= BATCH) await sweep();
  }
  if (batch.length) await sweep();
  if (removed) app.logger.warn({ removed }, "removed blobs no asset references");
  return removed;
}
