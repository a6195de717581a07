import { createReadStream } from "node:fs";
import type { Asset, Prisma } from "../core/database.ts";
import type { BlobStore } from "./blob-store.ts";
import { chunkText } from "./text-chunker.ts";

/** Kinds of text an asset is indexed by. */
export const IndexedTextKind = {
  /** A chunk of a text asset (offsets in characters). */
  CHUNK: "CHUNK",
  /** A line read from an image or a video frame (times in seconds; 0 for an image). */
  OCR: "OCR",
  /** What speech recognition heard (times in seconds). */
  TRANSCRIPT: "TRANSCRIPT",
  /** A stretch where voice activity detection heard speech; its text is empty (times in seconds). */
  SPEECH: "SPEECH",
  /** A generated description (times in seconds). */
  CAPTION: "CAPTION",
} as const;
export type IndexedTextKind = (typeof IndexedTextKind)[keyof typeof IndexedTextKind];

/** One piece of text an asset was indexed by, with where it sits: characters for CHUNK, seconds for the rest. */
export type IndexedTextSpan = { kind: IndexedTextKind; text: string; start: number; end: number };

/** The key of Asset.media that keeps the spans; the API shows them as `Asset.text`, not inside `media`. */
export const INDEXED_TEXT_KEY = "indexedText";
/** At most this many characters of spans are kept on the row (a long text's whole content is at its contentUrl). */
export const MAX_KEPT_TEXT_CHARS = 200_000;
const MAX_KEPT_SPANS = 5_000;

const kindOf = (kind: string): IndexedTextKind => {
  const upper = kind.toUpperCase();
  return (Object.values(IndexedTextKind) as string[]).includes(upper) ? (upper as IndexedTextKind) : IndexedTextKind.CHUNK;
};

/**
 * The asset's media record with the spans it was indexed by (ingest keeps them, bounded, beside what decoding
 * found): text chunks, OCR lines, transcripts and speech segments with their times.
 */
export function withIndexedText(
  media: Prisma.InputJsonValue | undefined,
  spans: Array<{ kind: string; text: string; start: number; end: number }>,
): Prisma.InputJsonValue | undefined {
  if (!media && spans.length === 0) return media;
  const kept: IndexedTextSpan[] = [];
  let characters = 0;
  for (const span of spans) {
    if (kept.length >= MAX_KEPT_SPANS || characters + span.text.length > MAX_KEPT_TEXT_CHARS) break;
    characters += span.text.length;
    kept.push({ kind: kindOf(span.kind), text: span.text, start: span.start, end: span.end });
  }
  const base = media && typeof media === "object" && !Array.isArray(media) ? (media as Record<string, unknown>) : {};
  return { ...base, [INDEXED_TEXT_KEY]: kept, ...(kept.length < spans.length ? { indexedTextTruncated: true } : {}) } as Prisma.InputJsonValue;
}

/** Asset.media without the kept spans and phones: what the `media` field shows. */
export function mediaWithoutText(media: unknown): unknown {
  if (!media || typeof media !== "object" || Array.isArray(media) || !(INDEXED_TEXT_KEY in media || SPOKEN_PHONES_KEY in media)) return media;
  const { [INDEXED_TEXT_KEY]: _spans, indexedTextTruncated: _truncated, [SPOKEN_PHONES_KEY]: _phones, ...rest } = media as Record<string, unknown>;
  return rest;
}

/**
 * The key of Asset.media that keeps what the phone recogniser heard in an asset's sound: search matches a query's
 * pronunciation against it where the word transcript is wrong (services/search/segments.ts).
 */
export const SPOKEN_PHONES_KEY = "spokenPhones";
/** About 12 phones a second: an hour of speech. */
const MAX_KEPT_PHONES = 50_000;

/** A phone (CMU set) heard at `start` to `end` seconds. */
export type SpokenPhone = { phone: string; start: number; end: number };
type StoredPhones = { phones: string; startsCs: number[]; endsCs: number[] };

/** The media record with the phones kept compactly (one string, times in centiseconds). */
export function withSpokenPhones(media: Prisma.InputJsonValue | undefined, phones: SpokenPhone[]): Prisma.InputJsonValue {
  const kept = phones.slice(0, MAX_KEPT_PHONES);
  const stored: StoredPhones = {
    phones: kept.map((phone) => phone.phone).join(" "),
    startsCs: kept.map((phone) => Math.round(phone.start * 100)),
    endsCs: kept.map((phone) => Math.round(phone.end * 100)),
  };
  const base = media && typeof media === "object" && !Array.isArray(media) ? (media as Record<string, unknown>) : {};
  return { ...base, [SPOKEN_PHONES_KEY]: stored } as Prisma.InputJsonValue;
}

/** The phones kept on an asset's media record; empty for an asset without them (older, silent, or not audio). */
export function readSpokenPhones(media: unknown): SpokenPhone[] {
  if (!media || typeof media !== "object" || Array.isArray(media)) return [];
  const stored = (media as Record<string, unknown>)[SPOKEN_PHONES_KEY] as StoredPhones | undefined;
  if (!stored || typeof stored.phones !== "string" || !Array.isArray(stored.startsCs) || !Array.isArray(stored.endsCs)) return [];
  const phones = stored.phones ? stored.phones.split(" ") : [];
  return phones.map((phone, index) => ({ phone, start: (stored.startsCs[index] ?? 0) / 100, end: (stored.endsCs[index] ?? 0) / 100 }));
}

type TextHost = { blobs: BlobStore; config: { TEXT_CHUNK_CHARS: number; TEXT_CHUNK_OVERLAP: number; TEXT_MAX_CHUNKS: number } };

/**
 * What the asset was indexed by, in order. Assets ingested since spans are kept read them from the row; a plain
 * text asset ingested before that is chunked again from its bytes (chunking is deterministic, so these are the
 * chunks it was indexed by, with the same settings); other older assets have none to show.
 */
export async function readIndexedText(host: TextHost, asset: Pick<Asset, "modality" | "mimeType" | "sha256" | "media">): Promise<IndexedTextSpan[]> {
  const media = asset.media as Record<string, unknown> | null;
  const kept = media && typeof media === "object" ? media[INDEXED_TEXT_KEY] : undefined;
  if (Array.isArray(kept)) return kept as IndexedTextSpan[];
  if (asset.modality !== "TEXT" || asset.mimeType === "application/pdf") return [];
  const { TEXT_CHUNK_CHARS: size, TEXT_CHUNK_OVERLAP: overlap, TEXT_MAX_CHUNKS: maxChunks } = host.config;
  // Only what the chunks can reach is read (4 bytes a character at most), not the whole of a large text.
  const maxBytes = maxChunks * size * 4;
  let content: string;
  try {
    const pieces: Buffer[] = [];
    let read = 0;
    for await (const piece of createReadStream(await host.blobs.localPath(asset.sha256), { end: maxBytes - 1 })) {
      pieces.push(piece as Buffer);
      read += (piece as Buffer).length;
    }
    content = new TextDecoder("utf-8").decode(Buffer.concat(pieces, read));
  } catch {
    return [];
  }
  return chunkText(content, { size, overlap, maxChunks }).map((chunk) => ({ kind: IndexedTextKind.CHUNK, ...chunk }));
}
