import type { Asset, Prisma } from "../../core/database.ts";
import type { JobHandlerContext } from "../job-handler.ts";
import type { DecodedAudio, DecodedImage, VideoFrame } from "../../assets/decoded-media.ts";

/** A piece of text with its place in the source: characters for text, seconds for media. */
export type TextSpan = {
  /** "chunk" (of a text asset), "ocr", "transcript", "caption", "speech" (a VAD segment). */
  kind: string;
  text: string;
  start: number;
  end: number;
};

/** A vector ready for the vector store: one asset has many (spaces x chunks). */
export type AssetVector = {
  space: string;
  model: string;
  vector: Float32Array;
  /** Which piece of the asset: 0 for the whole; chunk or frame index otherwise. */
  chunk: number;
  /** The text this vector stands for, when there is one (snippets, BM25). */
  text?: string;
};

/**
 * What the ingest stages hand each other, in order:
 * decode fills the media fields; encode adds vectors and derived text; index stores them.
 */
export type IngestState = {
  /** `truncated`: the text had more than TEXT_MAX_CHUNKS chunks; only its first `indexedCharacters` are indexed. */
  text?: { content: string; chunks: TextSpan[]; truncated?: { maxChunks: number; indexedCharacters: number } };
  image?: DecodedImage;
  audio?: DecodedAudio;
  frames?: VideoFrame[];
  /**
   * The asset's media record with what decoding found (`decoded`), written to
   * Asset.media by the ingest handler with the final status, in one statement.
   */
  media?: Prisma.InputJsonValue;
  /**
   * False when the asset had no embedding records as this job started: no
   * earlier run got as far as writing vectors (the index stage records the
   * embeddings before it writes them), so there are none to reconcile.
   * Unset: unknown, assume there may be.
   */
  hadEmbeddings?: boolean;
  /** OCR lines, transcripts, captions, speech segments. */
  derivedText: TextSpan[];
  vectors: AssetVector[];
};

/**
 * One step of turning stored bytes into a searchable asset (decode, encode,
 * index). Stages run in order; each reads what earlier ones left in `state`.
 */
export type IngestStage = {
  name: string;
  run(asset: Asset, state: IngestState, context: JobHandlerContext): Promise<void>;
};
