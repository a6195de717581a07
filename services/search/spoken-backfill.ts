import { readSpokenPhones, SPOKEN_PHONES_KEY } from "../assets/asset-text.ts";
import { sql, type Database } from "../core/database.ts";
import { indexSpokenPhones } from "./spoken-index.ts";

/**
 * Spoken assets ingested before the phone-key index (migration 20261205083000_spoken_phone_keys) have their phones
 * but no keys, so spoken search never hands them to the phone match until they are reindexed. This writes their
 * keys from the phones they kept, `batch` assets per call (the reconciler calls it every pass, so a backlog is worked
 * through over several passes). Returns how many assets it indexed.
 */
export async function backfillSpokenPhoneKeys(db: Database, options: { batch: number; projectIds?: string[] }): Promise<number> {
  const projectIds = options.projectIds?.length ? options.projectIds : null;
  const missing = await sql<{ id: string; projectId: string; media: unknown }>(
    db,
    `SELECT a.id, a."projectId", a.media FROM "Asset" a
    WHERE a.status = 'READY' AND a.modality IN ('AUDIO', 'VIDEO')
      AND coalesce(a.media -> $1 ->> 'phones', '') <> ''
      AND ($2::text[] IS NULL OR a."projectId" = ANY($2::text[]))
      AND NOT EXISTS (SELECT 1 FROM "SpokenPhoneKey" k WHERE k."assetId" = a.id)
    ORDER BY a."createdAt"
    LIMIT $3`,
    [SPOKEN_PHONES_KEY, projectIds, options.batch],
  );
  let indexed = 0;
  for (const asset of missing) {
    const phones = readSpokenPhones(asset.media);
    if (phones.length === 0) continue;
    // An asset deleted meanwhile is skipped (NOT_FOUND); anything else is the pass's failure.
    await indexSpokenPhones(db, asset.projectId, asset.id, phones).then(
      () => indexed++,
      (error: unknown) => {
        if ((error as { code?: string }).code !== "NOT_FOUND") throw error;
      },
    );
  }
  return indexed;
}
