import type { Modality } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { ModelRuntime, SpaceVectors } from "../models/model-runtime.ts";
import { loadConfig, type Config } from "../core/config.ts";
import { inSpan, inSpanSync } from "../observability/tracing.ts";
import { decodeQueryFile, type QueryDecodeLimits } from "./query-file.ts";
import type { VectorFilter, VectorHit, VectorStore } from "./vector-store.ts";

/** What search needs from the models: encoders into every space a modality reaches. */
export type QueryEncoder = Pick<ModelRuntime, "embedText" | "embedImages" | "embedAudio">;

export type SearchQuery = { text: string } | { assetId: string } | { file: Buffer };

export type SearchRequest = {
  query: SearchQuery;
  /** Only hits of these modalities. */
  modalities?: Modality[];
  limit?: number;
  /** Present: hybrid BM25 + vector ranking in each space (1: vectors only, 0: BM25 only). Text queries only. */
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

export type SearchLimits = QueryDecodeLimits & Pick<Config, "SEARCH_MAX_TEXT_CHARS">;

export type SearchHit = {
  assetId: string;
  modality: Modality;
  /** Reciprocal rank fusion over the spaces that found the asset, each space weighted. */
  score: number;
  /** The matching text chunk, OCR line or transcript span, when the asset has text. */
  snippet: string | null;
  /** The spaces that found it, best first. */
  spaces: string[];
};

/** One vector to look for in one space. */
type Probe = { space: string; vector: ArrayLike<number>; text?: string };

export const MAX_SEARCH_LIMIT = 100;
const DEFAULT_LIMIT = 10;
/** RRF's k (Cormack et al. 2009): damps the weight of the very top ranks so one space cannot dominate. */
const RRF_K = 60;
/** A long text has many chunks: fetch more than `limit` per space so `limit` distinct assets survive. */
const CHUNKS_PER_ASSET = 4;
const MAX_SNIPPET_CHARS = 280;

/**
 * Cross-modal search: the query is encoded into every space its modality
 * reaches (text: the sentence space and the shared image-text space; an
 * image: the image-text space; ...), each space is searched on its own, and
 * the per-space rankings are merged by reciprocal rank fusion. RRF is used
 * rather than comparing scores because cosine similarities from different
 * models are not on one scale. An asset query reuses the asset's stored
 * vectors (their mean per space) instead of encoding the asset again.
 */
export async function crossModalSearch(
  store: VectorStore,
  encoder: QueryEncoder,
  projectId: string,
  request: SearchRequest,
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
  const { probes: reached, excludeAssetIds } = await probesFor(store, encoder, projectId, request.query, limits);
  const probes = reached.filter((probe) => (weights[probe.space] ?? 1) > 0);
  if (probes.length === 0) {
    throw new TesseraError(
      ErrorCode.BAD_USER_INPUT,
      `spaceWeights leave no space to search: this query reaches ${reached.map((probe) => probe.space).join(", ")}`,
    );
  }
  const filter: VectorFilter = { ...request.filter, modalities: request.modalities, excludeAssetIds };
  const candidates = Math.min(limit * CHUNKS_PER_ASSET, 400);
  // A span per space queried and one for the fusion (services/observability); the query text is in none.
  const rankings = await Promise.all(
    probes.map((probe) => {
      const hybrid = probe.text !== undefined && request.alpha !== undefined;
      return inSpan(`search.space ${probe.space}`, { "tessera.search.space": probe.space, "tessera.search.hybrid": hybrid, "tessera.search.candidates": candidates }, async (span) => {
        const hits = hybrid
          ? await store.hybrid(projectId, { space: probe.space, vector: probe.vector, text: probe.text!, alpha: request.alpha!, limit: candidates, filter })
          : await store.nearVector(projectId, { space: probe.space, vector: probe.vector, limit: candidates, filter });
        span.setAttribute("tessera.search.hits", hits.length);
        return hits;
      });
    }),
  );
  const queryText = "text" in request.query ? request.query.text : undefined;
  return inSpanSync("search.fusion", { "tessera.search.spaces": rankings.length }, (span) => {
    const fused = fuseRankings(rankings, queryText, weights).slice(0, limit);
    span.setAttribute("tessera.search.hits", fused.length);
    return fused;
  });
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
): Promise<{ probes: Probe[]; excludeAssetIds?: string[] }> {
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
    case "AUDIO":
      return { probes: toProbes(await encoder.embedAudio([decoded.clip]), "AUDIO") };
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
  const norm = Math.hypot(...sum) || 1;
  return sum.map((value) => value / norm);
}

/**
 * Weighted reciprocal rank fusion: an asset's score is the sum over spaces
 * of weight / (k + its rank there), its rank being that of its best chunk
 * and the weight that of the space (default 1). The snippet comes from the
 * best-ranked chunk that has text.
 */
export function fuseRankings(rankings: VectorHit[][], queryText?: string, spaceWeights: Record<string, number> = {}): SearchHit[] {
  const fused = new Map<string, SearchHit & { bestRank: number; snippetRank: number; spaceRanks: Map<string, number> }>();
  for (const ranking of rankings) {
    const ranks = new Map<string, number>();
    for (const hit of ranking) {
      const firstChunk = !ranks.has(hit.assetId);
      if (firstChunk) ranks.set(hit.assetId, ranks.size + 1);
      const rank = ranks.get(hit.assetId)!;
      const entry = fused.get(hit.assetId) ?? {
        assetId: hit.assetId,
        modality: hit.modality,
        score: 0,
        snippet: null,
        spaces: [],
        bestRank: Infinity,
        snippetRank: Infinity,
        spaceRanks: new Map(),
      };
      if (firstChunk) {
        entry.score += (spaceWeights[hit.space] ?? 1) / (RRF_K + rank);
        entry.spaceRanks.set(hit.space, rank);
        entry.bestRank = Math.min(entry.bestRank, rank);
      }
      if (hit.text.trim() && rank < entry.snippetRank) {
        entry.snippet = snippetOf(hit.text, queryText);
        entry.snippetRank = rank;
      }
      fused.set(hit.assetId, entry);
    }
  }
  return [...fused.values()]
    .sort((a, b) => b.score - a.score || a.bestRank - b.bestRank)
    .map(({ bestRank: _bestRank, snippetRank: _snippetRank, spaceRanks, ...hit }) => ({
      ...hit,
      spaces: [...spaceRanks].sort((a, b) => a[1] - b[1]).map(([space]) => space),
    }));
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
