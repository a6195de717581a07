import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Asset, Modality } from "../../services/core/database.ts";
import type { AssetVector, IngestState } from "../../services/worker/ingest/ingest-stage.ts";
import { indexStage } from "../../services/worker/ingest/index-stage.ts";
import type { JobHandlerContext } from "../../services/worker/job-handler.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

/*
 * `search` and `deleteAsset` through GraphQL, on the real Weaviate. Assets are
 * stored as the ingest pipeline stores them (blob, row, then the index stage
 * with the vectors an encoder made): text vectors come from the real
 * sentence model the runtime serves (USE-lite); the cross-modal cases use
 * vectors written directly in a test space, so their answer is known.
 */

const SEARCH = /* GraphQL */ `
  query Search($input: SearchInput!) {
    search(input: $input) { hits { score snippet spaces asset { id modality } } }
  }
`;
const DELETE = /* GraphQL */ `
  mutation Delete($id: ID!) { deleteAsset(id: $id) { id vectorsDeleted blobDeleted } }
`;

const unit = (...values: number[]) => {
  const norm = Math.hypot(...values);
  return Float32Array.from(values.map((value) => value / norm));
};

describe("search and deleteAsset through GraphQL (Weaviate)", () => {
  let t: TestApp;
  let a: { key: string; projectId: string };
  let b: { key: string; projectId: string };
  const texts = {
    cat: "A cat is sleeping on the sofa in the afternoon sun.",
    stocks: "Stock prices fell sharply after the central bank raised interest rates.",
    recipe: "Whisk the flour, eggs and milk into a smooth pancake batter.",
  };
  const assets: Record<string, Asset> = {};

  /** What the ingest pipeline does for an asset: blob, row, then the index stage with the encoders' vectors. */
  async function storeAsset(
    projectId: string,
    options: { bytes: string; modality: Modality; vectors: AssetVector[]; derivedText?: string[]; tags?: string[]; metadata?: Record<string, unknown> },
  ): Promise<Asset> {
    const blob = await t.app.blobs.put(Buffer.from(options.bytes));
    const asset = await t.app.db.asset.create({
      data: {
        projectId,
        modality: options.modality,
        sha256: blob.sha256,
        mimeType: options.modality === "TEXT" ? "text/plain" : "image/png",
        byteSize: blob.byteSize,
        source: "upload",
        status: "READY",
        tags: options.tags ?? [],
        metadata: (options.metadata ?? {}) as object,
      },
    });
    const state: IngestState = {
      derivedText: (options.derivedText ?? []).map((text) => ({ kind: "ocr", text, start: 0, end: 0 })),
      vectors: options.vectors,
    };
    await indexStage.run(asset, state, { app: t.app } as JobHandlerContext);
    return asset;
  }

  async function sentenceVectors(text: string): Promise<AssetVector[]> {
    // The sentence space only, whatever else the runtime serves (a demo image-text model lands in models/ at times).
    const spaces = (await t.app.models.embedText([text])).filter((space) => space.space === "sentence");
    expect(spaces).toHaveLength(1);
    return spaces.map((space) => ({ space: space.space, model: space.model, vector: space.vectors[0]!, chunk: 0, text }));
  }

  const search = (input: Record<string, unknown>, key = a.key) => t.graphql(SEARCH, { input }, key);

  beforeAll(async () => {
    t = await startTestApp({ env: { WEAVIATE_URL: TEST_WEAVIATE_URL, WEAVIATE_GRPC_PORT: String(TEST_WEAVIATE_GRPC_PORT) } });
    a = await t.createProject();
    b = await t.createProject();
    for (const [name, text] of Object.entries(texts)) {
      assets[name] = await storeAsset(a.projectId, {
        bytes: text,
        modality: "TEXT",
        vectors: [
          ...(await sentenceVectors(text)),
          { space: "gql-image-text", model: "fixture", chunk: 0, vector: name === "cat" ? unit(1, 0, 0, 0) : unit(0, 0, 1, 0), text },
        ],
        tags: name === "recipe" ? ["kitchen"] : ["news"],
        metadata: { lang: "en", topic: name },
      });
    }
    assets.catPhoto = await storeAsset(a.projectId, {
      bytes: "cat photo bytes",
      modality: "IMAGE",
      vectors: [{ space: "gql-image-text", model: "fixture", chunk: 0, vector: unit(0.95, 0.05, 0, 0) }],
      derivedText: ["KEEP CALM", "and pet the cat"],
      tags: ["photos"],
    });
  }, 120_000);

  afterAll(async () => {
    await t.app.vectorStore.deleteProject(a.projectId);
    await t.app.vectorStore.deleteProject(b.projectId);
    await t.close();
  });

  it("runs on the real Weaviate, with the project's vectors stored by the index stage", async () => {
    expect(t.app.vectorStore.kind).toBe("weaviate");
    // Three texts x (sentence + gql-image-text) + one image.
    expect(t.app.models.spacesFor("TEXT")).toContain("sentence");
    expect(await t.app.vectorStore.count(a.projectId)).toBe(7);
    const embeddings = await t.app.db.assetEmbedding.findMany({ where: { assetId: assets.cat!.id } });
    expect(embeddings.map((row) => [row.space, row.vectors]).sort()).toEqual([
      ["gql-image-text", 1],
      ["sentence", 1],
    ]);
  });

  it("finds the text that means the same as the query, with the matching chunk as snippet", async () => {
    const result = await search({ text: "a kitten napping on the couch", modalities: ["TEXT"] });
    expect(result.errors).toBeUndefined();
    const hits = result.data.search.hits;
    expect(hits[0].asset).toEqual({ id: assets.cat!.id, modality: "TEXT" });
    expect(hits[0].snippet).toBe(texts.cat);
    expect(hits[0].spaces).toEqual(["sentence"]);
    expect(hits[0].score).toBeGreaterThan(hits[1].score);
    const finance = await search({ text: "interest rates and the stock market", limit: 1 });
    expect(finance.data.search.hits.map((hit: any) => hit.asset.id)).toEqual([assets.stocks!.id]);
  });

  it("searches by an asset across modalities: an image finds the text in the shared space, and not itself", async () => {
    const result = await search({ assetId: assets.catPhoto!.id });
    expect(result.errors).toBeUndefined();
    const hits = result.data.search.hits;
    expect(hits[0]).toMatchObject({ asset: { id: assets.cat!.id, modality: "TEXT" }, spaces: ["gql-image-text"], snippet: texts.cat });
    expect(hits.map((hit: any) => hit.asset.id)).not.toContain(assets.catPhoto!.id);
    // And the other way: the cat text finds the cat photo, whose snippet is its first OCR line (an asset query has no words to match).
    const back = await search({ assetId: assets.cat!.id, modalities: ["IMAGE"] });
    expect(back.data.search.hits).toEqual([
      { score: expect.any(Number), spaces: ["gql-image-text"], snippet: "KEEP CALM", asset: { id: assets.catPhoto!.id, modality: "IMAGE" } },
    ]);
  });

  it("filters on tags and metadata, and mixes in BM25 with hybrid.alpha", async () => {
    const kitchen = await search({ text: "breakfast", filter: { tags: ["kitchen"] } });
    expect(kitchen.data.search.hits.map((hit: any) => hit.asset.id)).toEqual([assets.recipe!.id]);
    const topic = await search({ text: "anything at all", filter: { metadata: { topic: "stocks" } } });
    expect(topic.data.search.hits.map((hit: any) => hit.asset.id)).toEqual([assets.stocks!.id]);
    const none = await search({ text: "anything", filter: { tags: ["news"], metadata: { topic: "recipe" } } });
    expect(none.data.search.hits).toEqual([]);
    // BM25 only: the one text with the word "batter" wins, whatever the vectors say.
    const words = await search({ text: "batter", hybrid: { alpha: 0 }, modalities: ["TEXT"] });
    expect(words.errors).toBeUndefined();
    expect(words.data.search.hits[0].asset.id).toBe(assets.recipe!.id);
  });

  it("explains each hit: every space's rank and score, the keyword (BM25) score and the fused score", async () => {
    const EXPLAIN = /* GraphQL */ `
      query Explain($input: SearchInput!) {
        search(input: $input) {
          hits {
            score
            asset { id }
            explain { alpha vectorScore fused spaces { space rank score normalised derived weight } keyword { rank score normalised } }
          }
        }
      }
    `;
    const result = await t.graphql(EXPLAIN, { input: { text: "pancake batter", modalities: ["TEXT"] } }, a.key);
    expect(result.errors).toBeUndefined();
    const [first, ...rest] = result.data.search.hits;
    expect(first.asset.id).toBe(assets.recipe!.id);
    // Found by the sentence space (first there) and by its words; a text query is hybrid by default.
    expect(first.explain).toMatchObject({
      alpha: 0.5,
      spaces: [{ space: "sentence", rank: 1, normalised: 1, derived: false, weight: 1 }],
      keyword: { rank: 1, normalised: 1 },
    });
    expect(first.explain.spaces[0].score).toBeGreaterThan(0.3);
    expect(first.explain.fused).toBeCloseTo(first.explain.alpha * first.explain.vectorScore + (1 - first.explain.alpha) * first.explain.keyword.normalised, 6);
    expect(first.score).toBe(first.explain.fused);
    // The others share no word with the query: no keyword evidence, and a lower score.
    for (const hit of rest) {
      expect(hit.explain.keyword).toBeNull();
      expect(hit.score).toBeLessThan(first.score);
    }
    // A weight shows in the explanation; alpha 1 runs no keyword ranking.
    const weighted = await t.graphql(EXPLAIN, { input: { text: "pancake batter", modalities: ["TEXT"], hybrid: { alpha: 1 }, spaceWeights: [{ space: "sentence", weight: 2 }] } }, a.key);
    expect(weighted.data.search.hits[0].explain).toMatchObject({ alpha: 1, keyword: null, spaces: [{ space: "sentence", weight: 2 }] });
  });

  it("keeps projects apart: project B never sees project A's assets or vectors", async () => {
    const fromB = await search({ text: "a kitten napping on the couch" }, b.key);
    expect(fromB.errors).toBeUndefined();
    expect(fromB.data.search.hits).toEqual([]);
    const byForeignAsset = await search({ assetId: assets.catPhoto!.id }, b.key);
    expect(byForeignAsset.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    // B stores the same kind of photo: its search finds only its own assets.
    const bPhoto = await storeAsset(b.projectId, {
      bytes: "b's photo",
      modality: "IMAGE",
      vectors: [{ space: "gql-image-text", model: "fixture", chunk: 0, vector: unit(1, 0, 0, 0) }],
    });
    const bText = await storeAsset(b.projectId, {
      bytes: "b's text",
      modality: "TEXT",
      vectors: [{ space: "gql-image-text", model: "fixture", chunk: 0, vector: unit(1, 0.1, 0, 0), text: "b's text" }],
    });
    const own = await search({ assetId: bPhoto.id }, b.key);
    expect(own.data.search.hits.map((hit: any) => hit.asset.id)).toEqual([bText.id]);
    const deleteForeign = await t.graphql(DELETE, { id: assets.cat!.id }, b.key);
    expect(deleteForeign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(await t.app.vectorStore.count(a.projectId, { assetId: assets.cat!.id })).toBe(2);
  });

  it("refuses bad input with typed errors", async () => {
    const codeOf = async (input: Record<string, unknown>) => (await search(input)).errors?.[0]?.extensions?.code;
    expect(await codeOf({})).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "cat", assetId: assets.cat!.id })).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "" })).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "cat", limit: 0 })).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "cat", limit: 1000 })).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "cat", hybrid: { alpha: 2 } })).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "cat", filter: { metadata: [1, 2] } })).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "cat", spaceWeights: [{ space: "sentence", weight: 1 }, { space: "sentence", weight: 2 }] })).toBe("BAD_USER_INPUT");
    expect(await codeOf({ text: "cat", spaceWeights: [{ space: "sentence", weight: -1 }] })).toBe("BAD_USER_INPUT");
    // The weights reach the fusion: an asset query searches only its own spaces, and a weight of 0 leaves none.
    const noSpace = await search({ assetId: assets.catPhoto!.id, spaceWeights: [{ space: "gql-image-text", weight: 0 }] });
    expect(noSpace.errors?.[0]).toMatchObject({ message: expect.stringContaining("no space to search"), extensions: { code: "BAD_USER_INPUT" } });
    expect(await codeOf({ assetId: randomUUID() })).toBe("NOT_FOUND");
    const anonymous = await t.graphql(SEARCH, { input: { text: "cat" } });
    expect(anonymous.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });

  it("searches by an uploaded file (multipart)", async () => {
    const form = new FormData();
    form.set("operations", JSON.stringify({ query: SEARCH, variables: { input: { file: null, limit: 1 } } }));
    form.set("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.set("0", new Blob(["whisking eggs for pancakes"], { type: "text/plain" }), "query.txt");
    const response = await fetch(t.url, { method: "POST", body: form, headers: { authorization: `Bearer ${a.key}`, "graphql-require-preflight": "1" } });
    const result = (await response.json()) as any;
    expect(result.errors).toBeUndefined();
    expect(result.data.search.hits.map((hit: any) => hit.asset.id)).toEqual([assets.recipe!.id]);
  });

  it("never shows a hit whose row is gone, though its vectors are still in the store", async () => {
    // What an ingest that lost the race with deleteAsset leaves for a moment (or a crash, for longer): vectors, no row.
    const near = (y: number): AssetVector[] => [{ space: "gql-orphans", model: "fixture", chunk: 0, vector: unit(1, y, 0, 0), text: `near ${y}` }];
    const query = await storeAsset(a.projectId, { bytes: `orphan query ${randomUUID()}`, modality: "TEXT", vectors: near(0) });
    const kept = await storeAsset(a.projectId, { bytes: `orphan kept ${randomUUID()}`, modality: "TEXT", vectors: near(0.2) });
    const gone = await storeAsset(a.projectId, { bytes: `orphan gone ${randomUUID()}`, modality: "TEXT", vectors: near(0.1) });
    await t.app.db.asset.delete({ where: { id: gone.id } });
    try {
      for (const limit of [1, 10]) {
        const result = await search({ assetId: query.id, limit });
        expect(result.errors).toBeUndefined();
        // The row check drops it after the store ranked it first; it is not made up for (fewer hits, never a deleted one).
        expect(result.data.search.hits.map((hit: any) => hit.asset)).toEqual(limit === 1 ? [] : [{ id: kept.id, modality: "TEXT" }]);
      }
    } finally {
      await t.app.vectorStore.deleteAsset(a.projectId, gone.id);
    }
  });

  it("deleteAsset removes the row, the vectors, and the blob once no asset references it", async () => {
    const bytes = `shared bytes ${randomUUID()}`;
    const vector: AssetVector = { space: "gql-image-text", model: "fixture", chunk: 0, vector: unit(0, 0, 0, 1), text: "shared" };
    const inA = await storeAsset(a.projectId, { bytes, modality: "TEXT", vectors: [vector] });
    const inB = await storeAsset(b.projectId, { bytes, modality: "TEXT", vectors: [vector] });
    expect(inA.sha256).toBe(inB.sha256);

    const first = await t.graphql(DELETE, { id: inA.id }, a.key);
    expect(first.errors).toBeUndefined();
    // True for A although B keeps the file: A is told nothing about B (issue #14).
    expect(first.data.deleteAsset).toEqual({ id: inA.id, vectorsDeleted: 1, blobDeleted: true });
    expect(await t.app.db.asset.findUnique({ where: { id: inA.id } })).toBeNull();
    expect(await t.app.vectorStore.count(a.projectId, { assetId: inA.id })).toBe(0);
    expect(await t.app.blobs.has(inA.sha256)).toBe(true); // B's asset still has these bytes
    expect(await t.app.vectorStore.count(b.projectId, { assetId: inB.id })).toBe(1);

    const again = await t.graphql(DELETE, { id: inA.id }, a.key);
    expect(again.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");

    const last = await t.graphql(DELETE, { id: inB.id }, b.key);
    expect(last.data.deleteAsset).toEqual({ id: inB.id, vectorsDeleted: 1, blobDeleted: true });
    expect(await t.app.blobs.has(inB.sha256)).toBe(false);
    const hits = await search({ text: "shared" });
    expect(hits.data.search.hits.map((hit: any) => hit.asset.id)).not.toContain(inA.id);
  });
});
