import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { IndexedTextKind, readSpokenPhones, type IndexedTextSpan } from "../assets/asset-text.ts";
import { sql, type Asset, type Database, type Modality } from "../core/database.ts";
import { MIN_MATCH_MARGIN, MIN_QUERY_PHONES, phoneEvidence, queryPhones } from "./phonetic-match.ts";
import { spokenCandidates } from "./spoken-index.ts";

/** Where in an audio or video asset a text query matched, in seconds. */
export type HitSegment = { start: number; end: number; text: string; score: number };

/** Segments shown per hit. */
const MAX_SEGMENTS = 3;
/** Spoken assets matched per query by pronunciation: those sharing most phone keys with it (spoken-index.ts). */
const MAX_SPOKEN_CANDIDATES = 200;
/** The longest stretch of phone matching between two turns of the event loop. */
const SPOKEN_SLICE_MS = 5;
/**
 * A spoken match's score on the fused 0-1 scale: 0.6 at the least margin over chance that counts, 0.8 at a typical
 * true match's margin (0.25), 1 at 0.35 and above.
 */
const spokenScore = (margin: number) => Math.min(1, 0.3 + 2 * margin);

const TIMED_KINDS = new Set<string>([IndexedTextKind.TRANSCRIPT, IndexedTextKind.OCR, IndexedTextKind.CAPTION]);
const words = (text: string) => new Set(text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []);

/**
 * The places in an audio or video asset that match a text query, best first:
 * transcript segments and on-screen text (OCR of the video's shots) that share
 * the query's words, and the stretch of speech whose phones sound most like
 * the query (services/search/phonetic-match.ts), with what was heard there.
 */
async function segmentsOf(asset: Pick<Asset, "modality" | "media">, queryText: string, wantedPhones?: string[]): Promise<HitSegment[]> {
  if (asset.modality !== "AUDIO" && asset.modality !== "VIDEO") return [];
  const spans = indexedSpans(asset.media).filter((span) => TIMED_KINDS.has(span.kind) && span.text.trim());
  const wanted = [...words(queryText)].filter((word) => word.length > 2);
  const found: HitSegment[] = [];
  if (wanted.length) {
    for (const span of spans) {
      const present = words(span.text);
      const shared = wanted.filter((word) => present.has(word)).length;
      if (shared > 0) found.push({ start: span.start, end: Math.max(span.end, span.start), text: span.text, score: shared / wanted.length });
    }
  }
  const spoken = phoneMatchOf(asset, wantedPhones ?? (await queryPhones(queryText)).phones);
  if (spoken) {
    const heard = spans.filter((span) => span.kind === IndexedTextKind.TRANSCRIPT && span.start < spoken.end && span.end > spoken.start);
    found.push({ start: spoken.start, end: spoken.end, text: heard.map((span) => span.text).join(" "), score: spoken.score });
  }
  return found.sort((a, b) => b.score - a.score || a.start - b.start).slice(0, MAX_SEGMENTS);
}

function phoneMatchOf(asset: Pick<Asset, "media">, phones: string[]) {
  if (phones.length < MIN_QUERY_PHONES) return null;
  const match = phoneEvidence(phones, readSpokenPhones(asset.media));
  return match && match.margin >= MIN_MATCH_MARGIN ? { ...match, score: spokenScore(match.margin) } : null;
}

function indexedSpans(media: unknown): IndexedTextSpan[] {
  if (!media || typeof media !== "object" || Array.isArray(media)) return [];
  const spans = (media as Record<string, unknown>).indexedText;
  return Array.isArray(spans) ? (spans as IndexedTextSpan[]) : [];
}

/** What spoken matching needs of a search hit. */
type SpokenMergeable = { assetId: string; modality: Modality; score: number; snippet: string | null; spaces: string[]; segments: HitSegment[] };

export type SpokenRequest = { text: string; limit: number; modalities?: Modality[]; tags?: string[]; metadata?: Record<string, unknown> };

/**
 * A text query's hits with the spoken assets that sound like it merged in: the
 * spoken assets that share most phone keys with the query's pronunciation
 * (services/search/spoken-index.ts, one lookup) are matched by their phones,
 * and a match above chance scores the hit at least spokenScore(margin), so a
 * clip whose words the recogniser got wrong is still found by them. Each audio
 * or video hit gets its segments. Filters hold: the modalities, tags and
 * metadata asked for (metadata compared as in the store: key by key, an array
 * matching any element).
 */
export async function withSpokenMatches<H extends SpokenMergeable>(
  db: Database,
  projectId: string,
  hits: H[],
  request: SpokenRequest,
  newHit: (assetId: string, modality: Modality) => H,
): Promise<H[]> {
  const spokenModalities = (["AUDIO", "VIDEO"] as const).filter((modality) => !request.modalities?.length || request.modalities.includes(modality));
  const merged = new Map<string, H>(hits.map((hit) => [hit.assetId, hit]));
  const { phones } = await queryPhones(request.text);
  if (spokenModalities.length && phones.length >= MIN_QUERY_PHONES) {
    const candidates = await spokenCandidates(db, projectId, phones, { modalities: spokenModalities, tags: request.tags, limit: MAX_SPOKEN_CANDIDATES });
    let sliceStarted = performance.now();
    for (const asset of candidates) {
      // Matching is CPU work on the gateway's loop: give other requests their turn every few milliseconds.
      if (performance.now() - sliceStarted > SPOKEN_SLICE_MS) {
        await yieldToEventLoop();
        sliceStarted = performance.now();
      }
      if (!matchesMetadata(asset.metadata, request.metadata)) continue;
      const match = phoneEvidence(phones, readSpokenPhones(asset.media));
      if (!match || match.margin < MIN_MATCH_MARGIN) continue;
      const hit = merged.get(asset.id) ?? newHit(asset.id, asset.modality);
      // `explain` stays what the spaces and keywords said; "spoken-phones" among the spaces says the rest.
      merged.set(asset.id, { ...hit, score: Math.max(hit.score, spokenScore(match.margin)), spaces: [...hit.spaces, "spoken-phones"] });
    }
  }
  const top = [...merged.values()].sort((a, b) => b.score - a.score).slice(0, request.limit);
  const spoken = top.filter((hit) => hit.modality === "AUDIO" || hit.modality === "VIDEO").map((hit) => hit.assetId);
  const media = spoken.length
    ? await sql<Pick<Asset, "id" | "modality" | "media">>(db, `SELECT id, modality, media FROM "Asset" WHERE "projectId" = $1 AND id = ANY($2::text[])`, [projectId, spoken])
    : [];
  const byId = new Map(media.map((asset) => [asset.id, asset]));
  return Promise.all(
    top.map(async (hit) => {
      const asset = byId.get(hit.assetId);
      const segments = asset ? await segmentsOf(asset, request.text, phones) : [];
      return { ...hit, segments, snippet: hit.snippet ?? (segments.find((segment) => segment.text)?.text ?? null) };
    }),
  );
}

function matchesMetadata(metadata: unknown, wanted: Record<string, unknown> | undefined): boolean {
  if (!wanted || Object.keys(wanted).length === 0) return true;
  const record = metadata && typeof metadata === "object" && !Array.isArray(metadata) ? (metadata as Record<string, unknown>) : {};
  return Object.entries(wanted).every(([key, value]) => {
    const actual = key.split(".").reduce<unknown>((node, part) => (node && typeof node === "object" ? (node as Record<string, unknown>)[part] : undefined), record);
    if (value && typeof value === "object" && !Array.isArray(value)) return matchesMetadata(actual, value as Record<string, unknown>);
    return Array.isArray(actual) ? actual.some((element) => JSON.stringify(element) === JSON.stringify(value)) : JSON.stringify(actual) === JSON.stringify(value);
  });
}
