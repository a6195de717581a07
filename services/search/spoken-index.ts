import type { SpokenPhone } from "../assets/asset-text.ts";
import { constraintViolation, sql, type Database, type Modality } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

/**
 * The index behind spoken search: which audio and video assets are worth matching by pronunciation
 * (services/search/phonetic-match.ts) for a text query, found with one lookup instead of a scan of every spoken asset.
 *
 * The recogniser often hears a sound as its neighbour (a vowel as another vowel, T as D), which the match forgives
 * cheaply; so a key is written in coarse phone classes, where such swaps vanish: every stretch of KEY_LENGTH classes
 * in what was heard (a run of one class counted once, the recogniser splits sounds), cut at silence and noise. A
 * query's pronunciation gives its keys the same way; the assets sharing most of them are matched in full.
 */

/** Coarse classes: the consonant classes and the vowels of the match's swap costs, one letter each. */
const CLASS_OF = new Map<string, string>();
const CLASSES: Array<[string, string[]]> = [
  ["V", ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]],
  ["P", ["P", "B", "T", "D", "K", "G"]],
  ["F", ["F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH"]],
  ["C", ["CH", "JH"]],
  ["N", ["M", "N", "NG"]],
  ["L", ["L", "R", "W", "Y"]],
];
for (const [letter, phones] of CLASSES) for (const phone of phones) CLASS_OF.set(phone, letter);

/** Classes per key: 6^4 keys in all, so a key says something, and a short phrase still has a few. */
const KEY_LENGTH = 4;
/** Keys kept per asset: an hour of speech has far fewer distinct ones (at most 6^4). */
const MAX_KEYS = 6 ** KEY_LENGTH;

/** The distinct keys of a sequence of phones (CMU set, stress marks stripped). */
export function phoneticKeys(phones: readonly string[]): string[] {
  const keys = new Set<string>();
  let stretch = "";
  const flush = () => {
    for (let at = 0; at + KEY_LENGTH <= stretch.length; at++) keys.add(stretch.slice(at, at + KEY_LENGTH));
    stretch = "";
  };
  for (const phone of phones) {
    const letter = CLASS_OF.get(phone);
    if (!letter) flush(); // silence, noise, a breath: words do not run across it
    else if (!stretch.endsWith(letter)) stretch += letter;
  }
  flush();
  return [...keys].slice(0, MAX_KEYS);
}

/** Writes an asset's keys from the phones heard in it, replacing any it had; none for an asset without speech. */
export async function indexSpokenPhones(db: Database, projectId: string, assetId: string, heard: readonly SpokenPhone[]): Promise<void> {
  const keys = phoneticKeys(heard.map((phone) => phone.phone));
  try {
    await db.$transaction([
      db.spokenPhoneKey.deleteMany({ where: { assetId } }),
      db.spokenPhoneKey.createMany({ data: keys.map((key) => ({ assetId, projectId, key })), skipDuplicates: true }),
    ]);
  } catch (error) {
    if (constraintViolation(error) === "foreign-key") throw new TesseraError(ErrorCode.NOT_FOUND, `asset ${assetId} was deleted while it was being ingested`);
    throw error;
  }
}

export type SpokenCandidate = { id: string; modality: Modality; media: unknown; metadata: unknown };

/**
 * The project's READY spoken assets that share the most keys with a query's phones, best first, at most `limit`:
 * the ones the phone match then scores. Filters by modality and tags here; metadata is compared by the caller.
 */
export async function spokenCandidates(
  db: Database,
  projectId: string,
  queryPhones: readonly string[],
  options: { modalities: readonly Modality[]; tags?: readonly string[]; limit: number },
): Promise<SpokenCandidate[]> {
  const keys = phoneticKeys(queryPhones);
  if (keys.length === 0 || options.modalities.length === 0) return [];
  const tags = options.tags?.length ? [...options.tags] : null;
  // Straight on node-postgres: every text query makes this statement, and Prisma's engine spends milliseconds on one.
  return sql<SpokenCandidate>(
    db,
    `SELECT a.id, a.modality, a.media, a.metadata
    FROM (
      SELECT "assetId", count(*) AS shared FROM "SpokenPhoneKey"
      WHERE "projectId" = $1 AND key = ANY($2::text[])
      GROUP BY "assetId"
    ) k
    JOIN "Asset" a ON a.id = k."assetId"
    WHERE a."projectId" = $1 AND a.status = 'READY' AND a.modality::text = ANY($3::text[])
      AND ($4::text[] IS NULL OR a.tags @> $4::text[])
    ORDER BY k.shared DESC, a."createdAt" DESC
    LIMIT $5`,
    [projectId, keys, [...options.modalities], tags, options.limit],
  );
}
