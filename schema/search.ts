import { Prisma, sql, type Asset } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import { deleteAsset } from "../services/search/asset-deletion.ts";
import {
  crossModalSearch,
  DEFAULT_HYBRID_ALPHA,
  MAX_SEARCH_LIMIT,
  type SearchExplain,
  type SearchHit,
  type SearchQuery,
  type SpaceEvidence,
} from "../services/search/cross-modal-search.ts";
import type { HitSegment } from "../services/search/segments.ts";
import { findProjectAsset, AssetRef, ModalityEnum } from "./assets.ts";
import { builder } from "./builder.ts";

const HybridInput = builder.inputType("HybridInput", {
  description: `How a text query's keyword (BM25) ranking and its vector spaces share the fused score. Text queries are hybrid by default (alpha ${DEFAULT_HYBRID_ALPHA}).`,
  fields: (t) => ({
    alpha: t.float({ required: false, description: `The vector share: 1: vectors only; 0: BM25 only. Default ${DEFAULT_HYBRID_ALPHA}.` }),
  }),
});

const SearchFilterInput = builder.inputType("SearchFilter", {
  description: "Conditions every hit meets.",
  fields: (t) => ({
    tags: t.stringList({ required: false, description: "Hits carry every one of these tags." }),
    metadata: t.field({
      type: "JSON",
      required: false,
      description: 'Equality per key; nested keys as objects or dotted paths ({"camera.make": "Canon"}); an array in the asset matches any element.',
    }),
  }),
});

const SpaceWeightInput = builder.inputType("SpaceWeightInput", {
  description: "One vector space's vote in the fusion of a search's rankings.",
  fields: (t) => ({
    space: t.string({ required: true, description: 'A vector space, e.g. "sentence", "image-text", "audio" (see `models`).' }),
    weight: t.float({ required: true, description: "0 to 100; 1 is the default, 0 leaves the space out." }),
  }),
});

const SearchInput = builder.inputType("SearchInput", {
  description: "Exactly one of `text`, `assetId` or `file`.",
  fields: (t) => ({
    text: t.string({ required: false, description: "Find what matches these words, in any modality." }),
    assetId: t.id({ required: false, description: "Find what is like this asset; it is not in its own results." }),
    file: t.field({ type: "Upload", required: false, description: "An image, audio clip, video (its first frame) or text file." }),
    modalities: t.field({ type: [ModalityEnum], required: false, description: "Only hits of these modalities." }),
    limit: t.int({ required: false, description: `1 to ${MAX_SEARCH_LIMIT}, default 10.` }),
    hybrid: t.field({ type: HybridInput, required: false, description: `The keyword (BM25) and vector shares of a text query's score (default alpha ${DEFAULT_HYBRID_ALPHA}).` }),
    filter: t.field({ type: SearchFilterInput, required: false, description: "Only hits with these tags and metadata." }),
    spaceWeights: t.field({
      type: [SpaceWeightInput],
      required: false,
      description: "Weights of the vector spaces in the score fusion (default 1 each); spaces the query does not reach are ignored.",
    }),
  }),
});

type ResolvedHit = SearchHit & { asset: Asset };

/** The hits' rows in the caller's project, every column named (a prepared statement's result must not change with a migration). */
const HIT_ROWS = `SELECT ${Object.values(Prisma.AssetScalarFieldEnum).map((column) => `"${column}"`).join(", ")} FROM "Asset" WHERE "projectId" = $1 AND id = ANY($2::text[])`;

const HitSegmentRef = builder.objectRef<HitSegment>("HitSegment").implement({
  description: "Where in an audio or video asset a text query matched.",
  fields: (t) => ({
    start: t.exposeFloat("start", { description: "Seconds from the start of the asset." }),
    end: t.exposeFloat("end", { description: "Seconds from the start of the asset." }),
    text: t.exposeString("text", { description: "What was heard (transcript) or read (on-screen text) there; may be empty." }),
    score: t.exposeFloat("score", { description: "0 to 1: the share of the query's words found there, or how closely the speech there sounds like the query." }),
  }),
});

const SpaceEvidenceRef = builder.objectRef<SpaceEvidence>("SpaceEvidence").implement({
  description: "One vector space's view of a hit.",
  fields: (t) => ({
    space: t.exposeString("space", { description: 'The vector space, e.g. "sentence", "image-text", "audio".' }),
    rank: t.exposeInt("rank", { description: "The asset's rank (1 = first) among the assets this space found, at its best chunk." }),
    score: t.exposeFloat("score", { description: "Cosine similarity of the asset's best chunk to the query in this space." }),
    normalised: t.exposeFloat("normalised", { description: "The score min-max normalised over this space's candidates (1: the space's best)." }),
    derived: t.exposeBoolean("derived", {
      description: "The best chunk is text read from the asset (OCR, transcript), which counts in full only when the keyword ranking found the asset too.",
    }),
    weight: t.exposeFloat("weight", { description: "The space's weight (`spaceWeights`, default 1)." }),
  }),
});

const KeywordEvidenceRef = builder.objectRef<NonNullable<SearchExplain["keyword"]>>("KeywordEvidence").implement({
  description: "The keyword (BM25) ranking's view of a hit.",
  fields: (t) => ({
    rank: t.exposeInt("rank", { description: "The asset's rank (1 = first) among the keyword matches." }),
    score: t.exposeFloat("score", { description: "The vector store's BM25 score of the asset's best matching chunk (relative: 1 is the best match)." }),
    normalised: t.exposeFloat("normalised", { description: "The score min-max normalised over the keyword matches." }),
  }),
});

const HeardWordsRef = builder.objectRef<NonNullable<SearchExplain["heard"]>>("HeardWords").implement({
  description: "What an audio query said, as the served transcription model heard it, and how well those words match the hit.",
  fields: (t) => ({
    text: t.exposeString("text", { description: "The words heard in the query clip (its first 30 seconds)." }),
    score: t.exposeFloat("score", {
      description: "The hit's score as a text search for those words, 0 to 1; the hit's score is the larger of `fused` and a share of this.",
    }),
  }),
});

const SearchExplainRef = builder.objectRef<SearchExplain>("SearchExplain").implement({
  description: "Why a hit ranks where it does: every signal that went into its score.",
  fields: (t) => ({
    spaces: t.field({ type: [SpaceEvidenceRef], description: "Each vector space that found the asset, best rank first.", resolve: (explain) => explain.spaces }),
    keyword: t.field({ type: KeywordEvidenceRef, nullable: true, description: "The keyword match; null when no query word matched or no keyword ranking ran (non-text queries, alpha 1).", resolve: (explain) => explain.keyword }),
    vectorScore: t.exposeFloat("vectorScore", {
      description: "What the vector spaces say, 0 to 1: the weighted mean of the normalised scores over the spaces that see the asset's modality, or its derived text's score when higher.",
    }),
    alpha: t.exposeFloat("alpha", { description: "The vector share of the score; the keyword ranking has the rest." }),
    fused: t.exposeFloat("fused", { description: "alpha * vectorScore + (1 - alpha) * keyword.normalised: the hit's score." }),
    heard: t.field({
      type: HeardWordsRef,
      nullable: true,
      description: "For an audio query, when a served transcription model heard words in it and they found this hit; null otherwise.",
      resolve: (explain) => explain.heard ?? null,
    }),
  }),
});

const SearchHitRef = builder.objectRef<ResolvedHit>("SearchHit").implement({
  description: "One asset a search found, with why.",
  fields: (t) => ({
    score: t.exposeFloat("score", { description: "The fused score, 0 to 1 (see `explain`); higher is better." }),
    asset: t.field({ type: AssetRef, description: "The asset found.", resolve: (hit) => hit.asset }),
    snippet: t.exposeString("snippet", { nullable: true, description: "The matching text chunk, OCR line or transcript span." }),
    spaces: t.exposeStringList("spaces", { description: 'The vector spaces that found it, best first; "spoken-phones" when its speech sounds like the text query (its score is then at least that match\'s).' }),
    segments: t.field({
      type: [HitSegmentRef],
      description: "For a text query and an AUDIO or VIDEO hit: where in it the match is, best first (at most 3); empty otherwise.",
      resolve: (hit) => hit.segments,
    }),
    explain: t.field({ type: SearchExplainRef, description: "Each space's rank and score, the keyword (BM25) score and how they were fused.", resolve: (hit) => hit.explain }),
  }),
});

const SearchResultRef = builder.objectRef<{ hits: ResolvedHit[] }>("SearchResult").implement({
  description: "What a search found.",
  fields: (t) => ({ hits: t.field({ type: [SearchHitRef], description: "Best first, at most `limit`.", resolve: (result) => result.hits }) }),
});

builder.queryField("search", (t) =>
  t.withAuth({ project: true }).field({
    type: SearchResultRef,
    description: "Cross-modal search in the caller's project: a query of any modality finds assets of any modality.",
    args: { input: t.arg({ type: SearchInput, required: true, description: "The query and its filters." }) },
    resolve: async (_root, { input }, context) => {
      const { app, project } = context;
      const given = [input.text, input.assetId, input.file].filter((value) => value !== undefined && value !== null);
      if (given.length !== 1) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "give exactly one of `text`, `assetId` or `file`");
      let query: SearchQuery;
      if (typeof input.text === "string") {
        query = { text: input.text };
      } else if (input.assetId !== undefined && input.assetId !== null) {
        // vectorsOf is scoped to the project, so the row is looked up only when the asset has no vectors (below).
        query = { assetId: String(input.assetId) };
      } else {
        query = { file: await readUpload(input.file!, app.config.MAX_UPLOAD_BYTES) };
      }
      const metadata = input.filter?.metadata;
      if (metadata !== undefined && metadata !== null && (typeof metadata !== "object" || Array.isArray(metadata))) {
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, "filter.metadata must be a JSON object");
      }
      const spaceWeights: Record<string, number> = {};
      for (const { space, weight } of input.spaceWeights ?? []) {
        if (space in spaceWeights) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `spaceWeights names ${JSON.stringify(space)} twice`);
        spaceWeights[space] = weight;
      }
      let hits: SearchHit[];
      try {
        hits = await crossModalSearch(app.vectorStore, app.models, project.id, {
          query,
          modalities: input.modalities ?? undefined,
          limit: input.limit ?? undefined,
          alpha: input.hybrid?.alpha ?? undefined,
          filter: { tags: input.filter?.tags ?? undefined, metadata: (metadata as Record<string, unknown> | null) ?? undefined },
          spaceWeights,
          limits: app.config,
        }, app);
      } catch (error) {
        // No vectors: either no such asset in this project (NOT_FOUND), or one not indexed yet (CONFLICT).
        if (error instanceof TesseraError && error.code === ErrorCode.CONFLICT && "assetId" in query) {
          await findProjectAsset(context, query.assetId);
        }
        if (error instanceof TesseraError) throw error;
        app.logger.error({ err: error }, "search failed in the vector store");
        throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `the vector store (${app.vectorStore.kind}) did not answer; retry later`);
      }
      // Vectors outlive nothing: a hit whose row is gone (deleted a moment ago) is dropped, never shown half.
      // One prepared statement on node-postgres: every search makes it, and through Prisma (findMany, even $queryRaw)
      // it cost 1.5-2.7 ms of the event loop per query (bench/README.md, search), half a small project's store answer.
      const assets = hits.length ? await sql<Asset>(app.db, HIT_ROWS, [project.id, hits.map((hit) => hit.assetId)], "search-hit-rows") : [];
      const byId = new Map<string, Asset>();
      for (const asset of assets) byId.set(asset.id, asset);
      const resolved: ResolvedHit[] = [];
      for (const hit of hits) {
        const asset = byId.get(hit.assetId);
        if (asset) resolved.push(Object.assign(hit, { asset }));
      }
      return { hits: resolved };
    },
  }),
);

/** Reads a query upload into memory (a web File or the gateway's streamed upload), refusing it past the limit. */
async function readUpload(file: { stream(): ReadableStream<Uint8Array> }, maxBytes: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of file.stream() as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `the query file is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const DeleteAssetPayload = builder
  .objectRef<{ id: string; vectorsDeleted: number; blobDeleted: boolean }>("DeleteAssetPayload")
  .implement({
    description: "What `deleteAsset` removed.",
    fields: (t) => ({
      id: t.exposeID("id", { description: "The deleted asset's id." }),
      vectorsDeleted: t.exposeInt("vectorsDeleted", { description: "How many vectors were removed from the vector store." }),
      blobDeleted: t.exposeBoolean("blobDeleted", { description: "True once the asset no longer holds its bytes: they are gone for this project. The stored file is removed when no asset references it; whether another project holds the same bytes is never said." }),
    }),
  });

builder.mutationField("deleteAsset", (t) =>
  t.withAuth({ project: true }).field({
    type: DeleteAssetPayload,
    description: "Removes the asset's row, its vectors, and its blob unless another asset has the same bytes.",
    args: { id: t.arg.id({ required: true, description: "The asset's id." }) },
    resolve: (_root, args, context) => deleteAsset(context.app, context.project.id, String(args.id)),
  }),
);
