import type { Database } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { deleteAssetRow } from "../assets/asset-records.ts";
import type { BlobStore } from "../assets/blob-store.ts";
import { deleteBlobIfUnreferenced } from "../assets/ingest-service.ts";
import type { VectorStore } from "./vector-store.ts";

export type AssetDeletion = {
  id: string;
  vectorsDeleted: number;
  /** Always true once the asset is deleted: its bytes are gone for this project (see deleteAsset). */
  blobDeleted: true;
};

/** Where an asset lives: its row, its blob and its vectors; an AppContext has them all. */
export type AssetDeletionDependencies = { db: Database; blobs: BlobStore; vectorStore: VectorStore; logger: Logger };

/**
 * Removes an asset everywhere: its vectors first (if the store is down, the
 * call fails and the row stays, so a retry can finish the job), then its row
 * (embedding records go with it; jobs keep their history without it), then
 * its blob when no other asset, in any project, has the same bytes.
 */
export async function deleteAsset(app: AssetDeletionDependencies, projectId: string, assetId: string): Promise<AssetDeletion> {
  const asset = await app.db.asset.findFirst({ where: { id: assetId, projectId } });
  if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${assetId} in this project`);
  let vectorsDeleted: number;
  try {
    vectorsDeleted = await app.vectorStore.deleteAsset(projectId, asset.id);
  } catch (error) {
    app.logger.error({ err: error, assetId }, "could not delete the asset's vectors");
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the vector store did not answer; nothing was deleted, retry later");
  }
  await deleteAssetRow(app.db, projectId, asset.id);
  await deleteBlobIfUnreferenced(app, asset.sha256);
  // True for the caller in every case: its asset no longer holds the bytes. Whether the file itself is
  // gone depends on other projects' assets, and saying so would tell a tenant what another one holds.
  return { id: asset.id, vectorsDeleted, blobDeleted: true };
}
