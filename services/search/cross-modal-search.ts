import type { Database, Modality } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { ModelRuntime, SpaceVectors } from "../models/model-runtime.ts";
import { loadConfig, type Config } from "../core/config.ts";
import { inSpan, inSpanSync } from "../observability/tracing.ts";
import { decodeQueryFile, type QueryDecodeLimits } from "./query-file.ts";
import { hearQuery } from "./heard-query.ts";
import { keywordTerms, mergeKeywordRankings, type KeywordHit } from "./keyword-ranking.ts";
import { withSpokenMatches, type HitSegment } from "./segments.ts";
import type { VectorFilter, VectorHit, VectorStore } from "./vector-store.ts";

/** What search needs from the models: encoders into every space a modality reaches. */
export type QueryEncoder = Pick<ModelRuntime, "embedText" | "embedImages" | "embedAudio"> & Partial<Pick<ModelRuntime, "spacesFor" | "transcribe">>;

export type SearchQuery = { text: string } | { assetId: string } | { file: Buffer };

export type SearchRequest = {
  query: SearchQuery;
  /** Only hits of these modalities. */
  modalities?: Modality[];
  limit?: number;
  /**
   * The share of the vector spaces in a text query's fused score; the keyword (BM25) ranking has the rest
   * (1: vectors only, 0: BM25 only). Default DEFAULT_HYBRID_ALPHA. Text queries only.
   */
  alpha?: number;
  filter?: Pick<VectorFilter, "tags" | "metadata">;
  /**
   * Each space's vote in the fusion (default 1 each): 0 leaves a space out, 2 counts it twice. Spaces the
   * query does not reach are ignored, so one set of weights serves queries of every modality.
   */
  spaceWeights?: Record<string, number>;
  /**
   * The longest text query (SEARCH_MAX_TEXT_CHARS) and how a `file` query is decoded (the ingest limits:
   * IMAGE_MAX_SIDE, ...). Default: the configuration defaults.
   */
  limits?: SearchLimits;
};

type SearchLimits = QueryDecodeLimits & Pick<Config, "SEARCH_MAX_TEXT_CHARS">;

/** How a search ranks: the request's settings, checked, and what it filters on. */
type Ranking = { projectId: string; filter: VectorFilter; candidates: number; alpha: number; weights: Record<string, number>; sees: FusionOptions["sees"]; limit: number };

export type SearchHit = {
  assetId: string;
  modality: Modality;
  /** The fused score (see fuseRankings), from 0 to 1; higher is better. */
  score: number;
  /** The matching text chunk, OCR line or transcript span, when the asset has text. */
  snippet: string | null;
  /** The spaces that found it, best first. */
  spaces: string[];
  /** Why it ranks where it does: every signal that went into `score`. */
  explain: SearchExplain;
  /** For a text query and an audio or video hit: where in it the match is, best first; empty otherwise. */
  segments: HitSegment[];
};

/**
 * The database of the spoken assets' phone index and transcripts, for a text query's spoken matches (segments.ts).
 * Every caller passes it (an AppContext is one); without it, audio and video are found by vectors and words only.
 */
export type SpokenSource = { db: Database };

/** One vector space's view of a hit. */
export type SpaceEvidence = {
  space: string;
  /** 1-based rank of the asset (its best chunk) among the assets this space found. */
  rank: number;
  /** Cosine similarity of the best chunk. */
  score: number;
  /** The score min-max normalised over this space's candidates (1: its best). */
  normalised: number;
  /** The best chunk is text read from the asset (OCR, transcript), not the asset's own content. */
  derived: boolean;
  /** The space's weight (spaceWeights, default 1). */
  weight: number;
};

export type SearchExplain = {
  spaces: SpaceEvidence[];
  /** The keyword (BM25) ranking's view of the hit; null when it did not match or was not run. */
  keyword: { rank: number; score: number; normalised: number } | null;
  /** What the vector spaces say, 0 to 1 (see fuseRankings). */
  vectorScore: number;
  /** The vector share of the fused score (the request's alpha); the keyword ranking has the rest. */
  alpha: number;
  /** alpha * vectorScore + (1 - alpha) * keyword.normalised: the hit's score (see `heard` for an audio query). */
  fused: number;
  /**
   * An audio query's spoken words (recognised from the clip) and this hit's score as a text query for them, when
   * they found it; the hit's score is then the larger of `fused` and HEARD_WORDS_WEIGHT times this score.
   */
  heard?: { text: string; score: number };
};

/** One vector to look for in one space. */
type Probe = { space: string; vector: ArrayLike<number>; text?: string };

export const MAX_SEARCH_LIMIT = 100;
const DEFAULT_LIMIT = 10;
/**
 * A text query's default vector share (the keyword ranking has the rest). Tuned on
 * `npm run bench -- relevance` (bench/README.md, "relevance").
 */
export const DEFAULT_HYBRID_ALPHA = 0.5;
/**
 * How much text read from an asset (OCR, transcript) counts when no query word is in it: a space that
 * cannot see a picture's pixels should not outvote one that can on a sentence that only resembles the
 * query (issue #21: OCR guesses on emoji drawings pulled them above the right drawing).
 */
const UNCONFIRMED_DERIVED_WEIGHT = 0.5;
/**
 * Text read from an asset with fewer letters and digits than this is a guess, not words: OCR on a drawing reads
 * "O", "3", "nb" (16% of the demo model's emoji drawings carry one). Its vector says nothing of the asset, so it
 * counts only when the keyword ranking finds the query's words in it; otherwise a picture whose guess happened to
 * sit near the query took places from the pictures the cross-modal space ranked (issue #21, bench/README "retrieval").
 */
const MIN_DERIVED_CHARS = 3;
const isGuess = (text: string) => (text.match(/[\p{L}\p{N}]/gu)?.length ?? 0) < MIN_DERIVED_CHARS;
/** A long text has many chunks: fetch more than `limit` per space so `limit` distinct assets survive. */
const CHUNKS_PER_ASSET = 4;
const MAX_SNIPPET_CHARS = 280;
/**
 * What an audio query's spoken words count for against the clip's own sound: they are words read from the query,
 * derived evidence as an asset's OCR and transcript are (UNCONFIRMED_DERIVED_WEIGHT), so they add hits and lift
 * those the clip ranks low, but never outvote a hit the clip's own space is sure of. The recogniser's words may be
 * wrong (pocketsphinx on synthetic voices: word error rate 1.03, bench/README "transcription").
 */
export const HEARD_WORDS_WEIGHT = 0.5;

/**
 * Cross-modal search: the query is encoded into every space its modality reaches (text: the sentence and
 * image-text spaces; an image: the image-text space; ...), each space is searched on its own, and the rankings
 * are fused by normalised score (fuseRankings), with BM25 for text; then a text query's spoken matches and
 * segments (segments.ts). An asset query reuses the asset's stored vectors (their mean per space).
 */
export async function crossModalSearch(
  store: VectorStore,
  encoder: QueryEncoder,
  projectId: string,
  request: SearchRequest,
  spoken?: SpokenSource,
): Promise<SearchHit[]> {
  const limit = request.limit ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, `limit must be an integer from 1 to ${MAX_SEARCH_LIMIT}`);
  }
  if (request.alpha !== undefined && !(request.alpha >= 0 && request.alpha <= 1)) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "hybrid.alpha must be between 0 and 1");
  }
  const weights = checkedSpaceWeights(request.spaceWeights);
  const limits = request.limits ?? loadConfig({});
  if ("text" in request.query) checkTextLength(request.query.text, limits);
  const { probes: reached, excludeAssetIds, heard } = await probesFor(store, encoder, projectId, request.query, limits);
  const probes = reached.filter((probe) => (weights[probe.space] ?? 1) > 0);
  if (probes.length === 0) {
    throw new TesseraError(
      ErrorCode.BAD_USER_INPUT,
      `spaceWeights leave no space to search: this query reaches ${reached.map((probe) => probe.space).join(", ")}`,
    );
  }
  const ranking: Ranking = {
    projectId,
    filter: { ...request.filter, modalities: request.modalities, excludeAssetIds },
    candidates: Math.min(limit * CHUNKS_PER_ASSET, 400),
    alpha: request.alpha ?? DEFAULT_HYBRID_ALPHA,
    weights,
    sees: seesNatively(encoder),
    limit,
  };
  const fused = await rankProbes(store, probes, ranking);
  if (heard !== undefined) {
    const heardProbes = toProbes(await encoder.embedText([heard]), "TEXT", heard).filter((probe) => (weights[probe.space] ?? 1) > 0);
    return withHeardWords(fused, heardProbes.length ? await rankProbes(store, heardProbes, ranking) : [], heard, limit);
  }
  if (!spoken || !("text" in request.query)) return fused;
  // Speech the recogniser got wrong is still found by how the query's words sound, and audio and video hits say where.
  const text = request.query.text;
  const { alpha } = ranking;
  return inSpan("search.spoken", {}, () =>
    withSpokenMatches(spoken.db, projectId, fused, { text, limit, modalities: request.modalities, ...request.filter }, (assetId, modality) => ({
      assetId,
      modality,
      score: 0,
      snippet: null,
      spaces: [],
      explain: { spaces: [], keyword: null, vectorScore: 0, alpha, fused: 0 },
      segments: [],
    })),
  );
}

/** Each probe's space searched on its own, a text query's keyword ranking beside them, fused (fuseRankings). */
async function rankProbes(store: VectorStore, probes: Probe[], ranking: Ranking): Promise<SearchHit[]> {
  const { projectId, filter, candidates, weights, sees, limit } = ranking;
  // A span per space queried and one for the fusion (services/observability); the query text is in none.
  const rankings = await Promise.all(
    probes.map((probe) => {
      return inSpan(`search.space ${probe.space}`, { "tessera.search.space": probe.space, "tessera.search.candidates": candidates }, async (span) => {
        const hits = await store.nearVector(projectId, { space: probe.space, vector: probe.vector, limit: candidates, filter });
        span.setAttribute("tessera.search.hits", hits.length);
        return hits;
      });
    }),
  );
  const queryText = probes.find((probe) => probe.text !== undefined)?.text;
  const { alpha } = ranking;
  // The keyword ranking: BM25 over the text stored with the vectors, in every space a text query reaches (each
  // holds the assets it has vectors of), merged into one ranking by each list's normalised score.
  const keywordText = queryText === undefined ? "" : keywordTerms(queryText);
  const keywordProbes = alpha < 1 && keywordText ? probes.filter((probe) => probe.text !== undefined) : [];
  const keyword = keywordProbes.length
    ? mergeKeywordRankings(
        await Promise.all(
          keywordProbes.map((probe) =>
            inSpan(`search.keyword ${probe.space}`, { "tessera.search.space": probe.space, "tessera.search.candidates": candidates }, async (span) => {
              const hits = await store.hybrid(projectId, { space: probe.space, vector: probe.vector, text: keywordText, alpha: 0, limit: candidates, filter });
              span.setAttribute("tessera.search.hits", hits.length);
              return hits;
            }),
          ),
        ),
      )
    : undefined;
  return inSpanSync("search.fusion", { "tessera.search.spaces": rankings.length }, (span) => {
    const hits = fuseRankings(rankings, { queryText, spaceWeights: weights, keyword, alpha: keyword ? alpha : 1, sees, limit });
    span.setAttribute("tessera.search.hits", hits.length);
    return hits;
  });
}

/**
 * An audio query's hits with its spoken words' hits merged in: each asset scores the larger of what the clip's
 * sound says and HEARD_WORDS_WEIGHT times what the words say (as a text query: the text spaces and BM25).
 */
export function withHeardWords(byClip: SearchHit[], byWords: SearchHit[], heard: string, limit: number): SearchHit[] {
  const merged = new Map(byClip.map((hit) => [hit.assetId, hit]));
  for (const wordHit of byWords) {
    const score = HEARD_WORDS_WEIGHT * wordHit.score;
    const clipHit = merged.get(wordHit.assetId);
    const explain = { ...(clipHit?.explain ?? { spaces: [], keyword: null, vectorScore: 0, alpha: 1, fused: 0 }), heard: { text: heard, score: wordHit.score } };
    merged.set(wordHit.assetId, {
      ...(clipHit ?? wordHit),
      score: Math.max(clipHit?.score ?? 0, score),
      snippet: clipHit?.snippet ?? wordHit.snippet,
      spaces: [...new Set([...(clipHit?.spaces ?? []), ...wordHit.spaces])],
      explain,
    });
  }
  const rankOf = new Map(byClip.map((hit, index) => [hit.assetId, index]));
  return [...merged.values()].sort((a, b) => b.score - a.score || (rankOf.get(a.assetId) ?? Infinity) - (rankOf.get(b.assetId) ?? Infinity)).slice(0, limit);
}

/**
 * A text query's cost grows faster than its length (the sentence encoder's tokeniser, BM25 over every term),
 * so a long one is refused before anything is encoded.
 */
function checkTextLength(text: string, limits: Pick<Config, "SEARCH_MAX_TEXT_CHARS">) {
  const limit = limits.SEARCH_MAX_TEXT_CHARS;
  if (text.length <= limit) return;
  throw new TesseraError(
    ErrorCode.PAYLOAD_TOO_LARGE,
    `the search text has ${text.length} characters; at most ${limit} are taken (SEARCH_MAX_TEXT_CHARS)`,
    { variable: "SEARCH_MAX_TEXT_CHARS", limit, actual: text.length },
  );
}

function checkedSpaceWeights(weights: Record<string, number> = {}): Record<string, number> {
  for (const [space, weight] of Object.entries(weights)) {
    if (!Number.isFinite(weight) || weight < 0 || weight > 100) {
      throw new TesseraError(ErrorCode.BAD_USER_INPUT, `the weight of space ${JSON.stringify(space)} must be a number from 0 to 100 (got ${weight})`);
    }
  }
  return weights;
}

async function probesFor(
  store: VectorStore,
  encoder: QueryEncoder,
  projectId: string,
  query: SearchQuery,
  limits: SearchLimits,
): Promise<{ probes: Probe[]; excludeAssetIds?: string[]; heard?: string }> {
  if ("assetId" in query) {
    const stored = await store.vectorsOf(projectId, query.assetId);
    if (stored.length === 0) {
      throw new TesseraError(ErrorCode.CONFLICT, `asset ${query.assetId} has no vectors yet: search by it once it is READY`);
    }
    const bySpace = new Map<string, Float32Array[]>();
    for (const { space, vector } of stored) bySpace.set(space, [...(bySpace.get(space) ?? []), vector]);
    const probes = [...bySpace].map(([space, vectors]) => ({ space, vector: centroid(vectors) }));
    return { probes, excludeAssetIds: [query.assetId] };
  }
  if ("text" in query) {
    const text = query.text.trim();
    if (!text) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "the search text is empty");
    return { probes: toProbes(await encoder.embedText([text]), "TEXT", text) };
  }
  const decoded = await decodeQueryFile(query.file, limits);
  switch (decoded.modality) {
    case "TEXT":
      checkTextLength(decoded.text, limits);
      return { probes: toProbes(await encoder.embedText([decoded.text]), "TEXT", decoded.text) };
    case "IMAGE": {
      // A video query is its sampled frames; like a stored video's whole-asset vector, their mean.
      const spaces = (await encoder.embedImages(decoded.images)).filter((space) => space.vectors.length > 0);
      return { probes: toProbes(spaces.map((space) => ({ ...space, vectors: [centroid(space.vectors)] })), "IMAGE") };
    }
    case "AUDIO": {
      // A clip is also a spoken query where a transcription model is served: its words are looked for too (withHeardWords).
      const [spaces, heard] = await Promise.all([encoder.embedAudio([decoded.clip]), hearQuery(encoder, decoded.clip, limits)]);
      return { probes: toProbes(spaces, "AUDIO"), heard };
    }
  }
}

function toProbes(spaces: SpaceVectors[], modality: Modality, text?: string): Probe[] {
  const probes = spaces.filter((space) => space.vectors[0]).map((space) => ({ space: space.space, vector: space.vectors[0]!, text }));
  if (probes.length === 0) {
    throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, `no model encodes ${modality} queries: add an embedding model to the models folder`);
  }
  return probes;
}

/** The normalised mean: one direction that stands for all of an asset's chunks in a space. */
function centroid(vectors: Float32Array[]): Float32Array {
  const sum = new Float32Array(vectors[0]!.length);
  for (const vector of vectors) for (let i = 0; i < sum.length; i++) sum[i]! += vector[i]!;
  // A loop, not Math.hypot(...sum): spreading 512 arguments cost more than the sum itself.
  let squares = 0;
  for (let i = 0; i < sum.length; i++) squares += sum[i]! * sum[i]!;
  const norm = Math.sqrt(squares) || 1;
  return sum.map((value) => value / norm);
}

export type FusionOptions = {
  /** The query's words, for snippets. */
  queryText?: string;
  /** Each space's weight (default 1). */
  spaceWeights?: Record<string, number>;
  /** The keyword (BM25) ranking, chunks best first, when one was run. */
  keyword?: KeywordHit[];
  /** The vector share of the fused score (default 1 without a keyword ranking). */
  alpha?: number;
  /**
   * Whether a space holds vectors of an asset's own content for this modality (the runtime's encoders);
   * absent, it is read from the candidates: a space sees a modality when one of its hits of it has no text.
   */
  sees?: (space: string, modality: Modality) => boolean;
  /** At most this many hits, best first (their snippets are the only ones cut); default all. */
  limit?: number;
};

/** A video is its frames and its sound track: the spaces that see either see it. */
function seesNatively(encoder: QueryEncoder): FusionOptions["sees"] {
  const { spacesFor } = encoder;
  if (!spacesFor) return undefined;
  const cache = new Map<Modality, Set<string>>();
  return (space, modality) => {
    let spaces = cache.get(modality);
    if (!spaces) {
      spaces = new Set(modality === "VIDEO" ? [...spacesFor.call(encoder, "IMAGE"), ...spacesFor.call(encoder, "AUDIO")] : spacesFor.call(encoder, modality));
      cache.set(modality, spaces);
    }
    return spaces.has(space);
  };
}

/** An asset's best chunk in one space: normalised scores of its own content, of words read from it, and of guesses. */
type AssetInSpace = { rank: number; best: number; native?: number; derived?: number; guess?: number };

/**
 * Normalised score fusion. Cosine similarities of different models are not on one scale, so each space's
 * scores are min-max normalised over the candidates it returned (its best is 1, its worst 0); plain
 * reciprocal rank fusion threw the scores away and left every hit within 0.030-0.033 (issue #21). Then:
 *
 * - native evidence (the asset's own content: a text's chunks, an image's pixels, a clip's sound) is the
 *   weighted mean over the spaces that can see the asset's modality natively, so a picture found by the
 *   one space that sees pictures is not halved by a sentence space that cannot see it;
 * - derived evidence (text read from the asset: OCR lines, a transcript; an image's chunks past 0) is weighed
 *   as a text's words are, the weighted mean over the spaces that see text, in full when the keyword ranking
 *   found the asset too, otherwise at UNCONFIRMED_DERIVED_WEIGHT and only when no space reached sees the asset's
 *   modality natively (a picture is judged by the space that sees it); a guess (under MIN_DERIVED_CHARS letters
 *   and digits) only when the keyword ranking found it;
 * - the vector score is the larger of the two, and the fused score
 *   `alpha * vector + (1 - alpha) * keyword`, the keyword score being BM25 normalised the same way (and at
 *   least 1 / its rank: the stores' relative BM25 gives the last of a few matches 0).
 *
 * An asset counts once per space, at its best chunk; the snippet comes from the best-ranked chunk with text.
 */
export function fuseRankings(rankings: VectorHit[][], options: FusionOptions = {}): SearchHit[] {
  const { queryText, spaceWeights = {}, keyword, alpha = 1, sees, limit } = options;
  const weightOf = (space: string) => spaceWeights[space] ?? 1;
  const modalityOf = new Map<string, Modality>();
  const snippets = new Map<string, { text: string; rank: number }>();
  const perSpace = rankings.map((ranking) => {
    const assets = new Map<string, AssetInSpace>();
    const space = ranking[0]?.space;
    const seen = new Set<Modality>(["TEXT"]);
    for (const hit of ranking) if (!hit.text.trim()) seen.add(hit.modality);
    const seesModality = (modality: Modality) => (sees && space !== undefined ? sees(space, modality) : seen.has(modality));
    const scores = ranking.map((hit) => hit.score);
    const [low, high] = [Math.min(...scores), Math.max(...scores)];
    const normalise = (score: number) => (high > low ? (score - low) / (high - low) : 1);
    for (const hit of ranking) {
      modalityOf.set(hit.assetId, hit.modality);
      // Found through text read from it (OCR, transcript) by a space that cannot see its own content.
      // An image's own content is its chunk 0; its other chunks are the words read in it, embedded as text.
      const derived = !seesModality(hit.modality) || (hit.modality === "IMAGE" && hit.chunk > 0);
      const entry = assets.get(hit.assetId) ?? { rank: assets.size + 1, best: hit.score };
      const score = normalise(hit.score);
      if (derived && isGuess(hit.text)) entry.guess = Math.max(entry.guess ?? 0, score);
      else if (derived) entry.derived = Math.max(entry.derived ?? 0, score);
      else entry.native = Math.max(entry.native ?? 0, score);
      entry.best = Math.max(entry.best, hit.score);
      assets.set(hit.assetId, entry);
      const snippet = snippets.get(hit.assetId);
      if (hit.text.trim() && (!snippet || entry.rank < snippet.rank)) snippets.set(hit.assetId, { text: hit.text, rank: entry.rank });
    }
    return { space, assets, seesModality };
  });

  const keywordOf = new Map<string, { rank: number; score: number; normalised: number }>();
  if (keyword?.length) {
    const scores = keyword.map((hit) => hit.score);
    const [low, high] = [Math.min(...scores), Math.max(...scores)];
    for (const hit of keyword) {
      modalityOf.set(hit.assetId, hit.modality);
      if (!keywordOf.has(hit.assetId)) {
        // Min-max alone gives the last of two matches 0, as if it had none: a match counts at least 1 / its rank.
        const rank = keywordOf.size + 1;
        const normalised = Math.max(hit.normalised ?? (high > low ? (hit.score - low) / (high - low) : 1), 1 / rank);
        keywordOf.set(hit.assetId, { rank, score: hit.score, normalised });
      }
      // The line that holds the query's words is the better snippet for a keyword match.
      const snippet = snippets.get(hit.assetId);
      if (hit.text.trim() && !snippet) snippets.set(hit.assetId, { text: hit.text, rank: keywordOf.get(hit.assetId)!.rank });
    }
  }

  const hits: SearchHit[] = [];
  for (const [assetId, modality] of modalityOf) {
    const spaces: SpaceEvidence[] = [];
    let nativeSum = 0;
    let nativeWeights = 0;
    let derivedSum = 0;
    let textWeights = 0;
    const keywordHit = keywordOf.get(assetId) ?? null;
    for (const { space, assets, seesModality } of perSpace) {
      if (space === undefined) continue;
      const weight = weightOf(space);
      if (seesModality(modality)) nativeWeights += weight;
      if (seesModality("TEXT")) textWeights += weight;
      const found = assets.get(assetId);
      if (!found) continue;
      // A guess counts as words read only when the keyword ranking found the query's words in the asset.
      const read = Math.max(found.derived ?? 0, keywordHit ? (found.guess ?? 0) : 0);
      const isDerivedBest = found.native === undefined || read > found.native;
      spaces.push({ space, rank: found.rank, score: found.best, normalised: Math.max(found.native ?? 0, read), derived: isDerivedBest, weight });
      if (found.native !== undefined) nativeSum += weight * found.native;
      derivedSum += weight * read;
    }
    const native = nativeWeights > 0 ? nativeSum / nativeWeights : 0;
    // Words read from an asset are weighed as a text's words are: over the spaces that see text.
    // Unconfirmed by the keyword ranking, words read from an asset count only where no space reached sees the asset
    // itself: where one does (a picture, for a text or audio query), it has spoken, and a reading that merely
    // resembles the query ("eee" on a bento box, "COOL" on a button) took its places (issue #21, bench/README "retrieval").
    const unconfirmedWeight = nativeWeights > 0 ? 0 : UNCONFIRMED_DERIVED_WEIGHT;
    const derived = textWeights > 0 ? (Math.min(derivedSum, textWeights) / textWeights) * (keywordHit ? 1 : unconfirmedWeight) : 0;
    const vectorScore = Math.max(native, derived);
    const fused = alpha * vectorScore + (1 - alpha) * (keywordHit?.normalised ?? 0);
    spaces.sort((a, b) => a.rank - b.rank);
    hits.push({
      assetId,
      modality,
      score: fused,
      snippet: null, // below, for the hits returned
      spaces: spaces.map((entry) => entry.space),
      explain: { spaces, keyword: keywordHit, vectorScore, alpha, fused },
      segments: [],
    });
  }
  const bestRank = (hit: SearchHit) => Math.min(...hit.explain.spaces.map((entry) => entry.rank), hit.explain.keyword?.rank ?? Infinity);
  const best = hits.sort((a, b) => b.score - a.score || bestRank(a) - bestRank(b)).slice(0, limit);
  for (const hit of best) {
    const snippet = snippets.get(hit.assetId);
    if (snippet) hit.snippet = snippetOf(snippet.text, queryText);
  }
  return best;
}

/** The line that shares most words with the query (OCR and transcripts hold many), cut to a readable length. */
export function snippetOf(text: string, queryText?: string): string {
  const lines = text.split(/\n+/).map((line) => line.trim()).filter(Boolean);
  let best = lines[0] ?? text.trim();
  if (queryText && lines.length > 1) {
    const words = new Set(queryText.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);
    let bestOverlap = 0;
    for (const line of lines) {
      const overlap = (line.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((word) => words.has(word)).length;
      if (overlap > bestOverlap) [best, bestOverlap] = [line, overlap];
    }
  }
  return best.length > MAX_SNIPPET_CHARS ? `${best.slice(0, MAX_SNIPPET_CHARS - 1)}…` : best;
}
