import type { AppContext } from "../app/app-context.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { deleteBlobIfUnreferenced } from "../assets/ingest-service.ts";

export type AssetDeletion = { id: string; vectorsDeleted: number; blobDeleted: boolean };

/**
 * Removes an asset everywhere: its vectors first (if the store is down, the
 * call fails and the row stays, so a retry can finish the job), then its row
 * (embedding records go with it; jobs keep their history without it), then
 * its blob when no other asset, in any project, has the same bytes.
 */
export async function deleteAsset(app: AppContext, projectId: string, assetId: string): Promise<AssetDeletion> {
  const asset = await app.db.asset.findFirst({ where: { id: assetId, projectId } });
  if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${assetId} in this project`);
  let vectorsDeleted: number;
  try {
    vectorsDeleted = await app.vectorStore.deleteAsset(projectId, asset.id);
  } catch (error) {
    app.logger.error({ err: error, assetId }, "could not delete the asset's vectors");
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the vector store did not answer; nothing was deleted, retry later");
  }
  await app.db.asset.deleteMany({ where: { id: asset.id, projectId } });
  await deleteBlobIfUnreferenced(app, asset.sha256);
  const blobDeleted = !(await app.blobs.has(asset.sha256));
  return { id: asset.id, vectorsDeleted, blobDeleted };
}
