import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crossModalSearch, HEARD_WORDS_WEIGHT, type QueryEncoder } from "../../services/search/cross-modal-search.ts";
import { LanceDbVectorStore } from "../../services/search/lancedb-vector-store.ts";
import type { VectorRecord, VectorStore } from "../../services/search/vector-store.ts";
import { WeaviateVectorStore } from "../../services/search/weaviate-vector-store.ts";
import { encodeWav } from "../../services/generation/wav-file.ts";
import { makeMp4 } from "../support/media-fixtures.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

/*
 * The search service on real stores, with vectors written directly: the
 * vectors are chosen so the right answer is known, which tests the merging
 * (normalised score fusion across spaces), filters, snippets and query kinds
 * independently of any model's quality.
 */

const unit = (...values: number[]) => {
  const norm = Math.hypot(...values);
  return Float32Array.from(values.map((value) => value / norm));
};

/** Two spaces, as the runtime has them: a text-only sentence space and a shared image-text space. */
const sentence = { kitten: unit(1, 0, 0, 0), finance: unit(0, 1, 0, 0) };
const imageText = { kitten: unit(1, 0, 0, 0), kittenPhoto: unit(0.9, 0.1, 0, 0), finance: unit(0, 0, 1, 0), chart: unit(0, 0.1, 0.9, 0) };

/** A query encoder with a known answer per input; it records what it was asked. */
function knownEncoder() {
  const calls: string[] = [];
  const encoder: QueryEncoder = {
    async embedText(texts) {
      calls.push(`text:${texts[0]}`);
      const topic = /kitten|cat/.test(texts[0]!) ? "kitten" : "finance";
      return [
        { space: "sentence", model: "known", vectors: [sentence[topic]] },
        { space: "image-text", model: "known", vectors: [imageText[topic]] },
      ];
    },
    async embedImages(images) {
      calls.push(`images:${images.length}:${images[0]!.width}x${images[0]!.height}`);
      // A wide image stands for a cat photo, a tall one for a chart.
      return [{ space: "image-text", model: "known", vectors: images.map((image) => (image.width > image.height ? imageText.kittenPhoto : imageText.chart)) }];
    },
    async embedAudio() {
      calls.push("audio");
      return [];
    },
  };
  return { encoder, calls };
}

const adapters: Array<[string, () => Promise<{ store: VectorStore; cleanup(): Promise<void> }>]> = [
  [
    "weaviate",
    async () => ({
      store: await WeaviateVectorStore.connect({ url: TEST_WEAVIATE_URL, grpcPort: TEST_WEAVIATE_GRPC_PORT, collection: "TesseraSearchTest" }),
      cleanup: async () => {},
    }),
  ],
  [
    "embedded (LanceDB)",
    async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-search-"));
      return { store: await LanceDbVectorStore.open(dir), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
    },
  ],
];

describe.each(adapters)("cross-modal search on %s", (_name, open) => {
  let store: VectorStore;
  let cleanup: () => Promise<void>;
  const projectId = randomUUID();
  const otherProjectId = randomUUID();
  const ids = { kittenText: randomUUID(), financeText: randomUUID(), catPhoto: randomUUID(), chart: randomUUID() };

  const base = { model: "known", tags: [] as string[], metadata: {} as Record<string, unknown> };
  const records: VectorRecord[] = [
    { ...base, assetId: ids.kittenText, space: "sentence", chunk: 0, vector: sentence.kitten, modality: "TEXT", text: "a kitten naps in a basket", tags: ["pets"] },
    { ...base, assetId: ids.kittenText, space: "image-text", chunk: 0, vector: imageText.kitten, modality: "TEXT", text: "a kitten naps in a basket", tags: ["pets"] },
    { ...base, assetId: ids.financeText, space: "sentence", chunk: 0, vector: sentence.finance, modality: "TEXT", text: "quarterly stock market report" },
    { ...base, assetId: ids.financeText, space: "image-text", chunk: 0, vector: imageText.finance, modality: "TEXT", text: "quarterly stock market report" },
    { ...base, assetId: ids.catPhoto, space: "image-text", chunk: 0, vector: imageText.kittenPhoto, modality: "IMAGE", text: "", tags: ["pets"], metadata: { camera: "x100" } },
    { ...base, assetId: ids.chart, space: "image-text", chunk: 0, vector: imageText.chart, modality: "IMAGE", text: "Q3 revenue\nstock market up 4%\npage 2", metadata: { camera: "scan" } },
  ];

  beforeAll(async () => {
    ({ store, cleanup } = await open());
    await store.upsert(projectId, records);
    // Another project holds a perfect match for every query: it must never show up.
    await store.upsert(
      otherProjectId,
      records.map((record) => ({ ...record, assetId: randomUUID(), text: "other project" })),
    );
  });

  afterAll(async () => {
    await store.deleteProject(projectId);
    await store.deleteProject(otherProjectId);
    await store.close();
    await cleanup();
  });

  it("text finds an image: the query goes into every space text reaches, and ranks are fused", async () => {
    const { encoder, calls } = knownEncoder();
    const hits = await crossModalSearch(store, encoder, projectId, { query: { text: "kitten" } });
    expect(calls).toEqual(["text:kitten"]);
    // The kitten text is first in both spaces and the keyword match: 1 (normalised scores, issue #21).
    expect(hits[0]).toMatchObject({ assetId: ids.kittenText, modality: "TEXT", snippet: "a kitten naps in a basket", spaces: ["sentence", "image-text"] });
    expect(hits[0]!.score).toBeCloseTo(1, 6);
    expect(hits[0]!.explain).toMatchObject({ keyword: { rank: 1 }, vectorScore: expect.closeTo(1, 6), alpha: 0.5 });
    // The cat photo is second in the image-text space, the only space that sees images, so that space alone
    // makes its vector score (cosine 0.9939 normalised over the space's candidates, 0 to 1); no words match: above the chart.
    const order = hits.map((hit) => hit.assetId);
    const photo = hits.find((hit) => hit.assetId === ids.catPhoto)!;
    expect(photo).toMatchObject({ modality: "IMAGE", snippet: null, spaces: ["image-text"] });
    const photoCosine = 0.9 / Math.hypot(0.9, 0.1);
    expect(photo.score).toBeCloseTo(0.5 * photoCosine, 4);
    expect(photo.explain).toMatchObject({ spaces: [{ space: "image-text", rank: 2, normalised: expect.closeTo(photoCosine, 4), derived: false }], keyword: null });
    expect(order.indexOf(ids.catPhoto)).toBeLessThan(order.indexOf(ids.chart));
    expect(order.sort()).toEqual(Object.values(ids).sort());
    expect(hits.every((hit) => hit.snippet !== "other project")).toBe(true);
    expect(new Set(hits.map((hit) => hit.assetId)).size).toBe(hits.length);
  });

  it("modalities restrict the result types, and limit caps the hits", async () => {
    const { encoder } = knownEncoder();
    const images = await crossModalSearch(store, encoder, projectId, { query: { text: "kitten" }, modalities: ["IMAGE"] });
    expect(images.map((hit) => hit.assetId)).toEqual([ids.catPhoto, ids.chart]);
    const one = await crossModalSearch(store, encoder, projectId, { query: { text: "kitten" }, limit: 1 });
    expect(one.map((hit) => hit.assetId)).toEqual([ids.kittenText]);
  });

  it("weighs spaces in the fusion: a weight of 0 leaves a space out, unknown spaces are ignored", async () => {
    const { encoder } = knownEncoder();
    // "chart" is near the finance text in the sentence space and the chart image in image-text; only image-text holds images.
    const sentenceOnly = await crossModalSearch(store, encoder, projectId, { query: { text: "stock market" }, spaceWeights: { "image-text": 0, audio: 3 } });
    expect(sentenceOnly.every((hit) => hit.spaces.length === 1 && hit.spaces[0] === "sentence")).toBe(true);
    expect(sentenceOnly.map((hit) => hit.modality)).not.toContain("IMAGE");
    const imageHeavy = await crossModalSearch(store, encoder, projectId, { query: { text: "stock market" }, spaceWeights: { "image-text": 3 } });
    // Only image-text sees images, so its weight is the whole of the chart's vector score; the weight shows in explain.
    // The chart's OCR line reads "stock market", so the keyword half of the hybrid counts too.
    const chart = imageHeavy.find((hit) => hit.assetId === ids.chart)!;
    expect(chart.explain.vectorScore).toBeCloseTo(0.9 / Math.hypot(0.1, 0.9), 4);
    expect(chart.explain.keyword?.normalised).toBeGreaterThan(0);
    expect(chart.score).toBeCloseTo(0.5 * chart.explain.vectorScore + 0.5 * chart.explain.keyword!.normalised, 4);
    expect(chart.explain.spaces).toMatchObject([{ space: "image-text", weight: 3 }]);
    await expect(crossModalSearch(store, encoder, projectId, { query: { text: "kitten" }, spaceWeights: { sentence: 0, "image-text": 0 } })).rejects.toMatchObject({
      code: "BAD_USER_INPUT",
      message: expect.stringContaining("no space to search"),
    });
    for (const weight of [-1, Number.NaN, 101]) {
      await expect(crossModalSearch(store, encoder, projectId, { query: { text: "kitten" }, spaceWeights: { sentence: weight } })).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    }
  });

  it("filters on tags and metadata", async () => {
    const { encoder } = knownEncoder();
    const pets = await crossModalSearch(store, encoder, projectId, { query: { text: "stock market" }, filter: { tags: ["pets"] } });
    expect(pets.map((hit) => hit.assetId).sort()).toEqual([ids.kittenText, ids.catPhoto].sort());
    const scans = await crossModalSearch(store, encoder, projectId, { query: { text: "kitten" }, filter: { metadata: { camera: "scan" } } });
    expect(scans.map((hit) => hit.assetId)).toEqual([ids.chart]);
  });

  it("hybrid alpha 0 ranks by words, and the snippet is the OCR line that matches", async () => {
    const { encoder } = knownEncoder();
    // The vectors say "kitten"; the words say "stock market".
    const byWords = await crossModalSearch(store, { ...encoder, embedText: async () => [{ space: "image-text", model: "known", vectors: [imageText.kitten] }] }, projectId, {
      query: { text: "stock market" },
      alpha: 0,
      modalities: ["IMAGE"],
    });
    expect(byWords[0]).toMatchObject({ assetId: ids.chart, snippet: "stock market up 4%" });
    const byVectors = await crossModalSearch(store, { ...encoder, embedText: async () => [{ space: "image-text", model: "known", vectors: [imageText.kitten] }] }, projectId, {
      query: { text: "stock market" },
      alpha: 1,
      modalities: ["IMAGE"],
    });
    expect(byVectors[0]!.assetId).toBe(ids.catPhoto);
  });

  it("an asset query reuses the asset's stored vectors, never re-encodes, and leaves the asset itself out", async () => {
    const refuse = async () => {
      throw new Error("an asset query must not encode");
    };
    const hits = await crossModalSearch(store, { embedText: refuse, embedImages: refuse, embedAudio: refuse }, projectId, {
      query: { assetId: ids.catPhoto },
    });
    expect(hits[0]).toMatchObject({ assetId: ids.kittenText, modality: "TEXT" });
    expect(hits.map((hit) => hit.assetId)).not.toContain(ids.catPhoto);
    await expect(crossModalSearch(store, { embedText: refuse, embedImages: refuse, embedAudio: refuse }, otherProjectId, { query: { assetId: ids.catPhoto } })).rejects.toMatchObject({
      code: "CONFLICT",
    });
  });

  it("a file query is decoded by its bytes and encoded by its modality", async () => {
    const { encoder, calls } = knownEncoder();
    const widePng = await sharp({ create: { width: 64, height: 32, channels: 3, background: "#884422" } }).png().toBuffer();
    const hits = await crossModalSearch(store, encoder, projectId, { query: { file: widePng } });
    expect(calls).toEqual(["images:1:64x32"]);
    expect(hits[0]!.assetId).toBe(ids.catPhoto);
    // A video is its sampled frames (1 per second, as ingest samples them), pooled into one query per space.
    const tallVideo = await makeMp4(2, "32x64");
    const videoHits = await crossModalSearch(store, encoder, projectId, { query: { file: tallVideo } });
    expect(calls.at(-1)).toBe("images:2:32x64");
    expect(videoHits[0]!.assetId).toBe(ids.chart);
    const textFile = Buffer.from("stock market news\n");
    const textHits = await crossModalSearch(store, encoder, projectId, { query: { file: textFile } });
    expect(textHits[0]!.assetId).toBe(ids.financeText);
  });

  it("an audio query is also a spoken query: the words heard in the clip find what its sound alone does not", async () => {
    // The clip's sound projects near the chart; its words, as the transcriber hears them, are about a kitten.
    const heard: number[] = [];
    const encoder: QueryEncoder = {
      ...knownEncoder().encoder,
      embedAudio: async () => [{ space: "image-text", model: "known", vectors: [imageText.finance] }],
      transcribe: async (clip) => {
        heard.push(clip.length);
        return "a kitten in a basket";
      },
    };
    const wav = encodeWav(new Float32Array(8000), 16000);
    const images = await crossModalSearch(store, encoder, projectId, { query: { file: wav }, modalities: ["IMAGE"] });
    expect(heard).toEqual([8000]);
    expect(images.map((hit) => hit.assetId)).toEqual([ids.chart, ids.catPhoto]);
    // The sound is sure of the chart (1) and puts the cat photo last (0); the words lift it to their weighted score.
    expect(images[0]!.score).toBe(1);
    expect(images[1]!.explain.heard).toMatchObject({ text: "a kitten in a basket", score: expect.any(Number) });
    expect(images[1]!.score).toBeGreaterThan(0);
    expect(images[1]!.score).toBeCloseTo(HEARD_WORDS_WEIGHT * images[1]!.explain.heard!.score, 6);
    const all = await crossModalSearch(store, encoder, projectId, { query: { file: wav } });
    // The kitten text is found by the heard words (its sentence vector and BM25), not by the sound.
    const kitten = all.find((hit) => hit.assetId === ids.kittenText)!;
    expect(kitten.spaces).toContain("sentence");
    expect(kitten.explain.heard!.score).toBeGreaterThan(0.9);
    expect(kitten.score).toBeGreaterThanOrEqual(0.45);
  });

  it("refuses bad queries with typed errors", async () => {
    const { encoder } = knownEncoder();
    const search = (request: Parameters<typeof crossModalSearch>[3]) => crossModalSearch(store, encoder, projectId, request);
    await expect(search({ query: { text: "  " } })).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    await expect(search({ query: { text: "kitten" }, limit: 0 })).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    await expect(search({ query: { text: "kitten" }, limit: 101 })).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    await expect(search({ query: { text: "kitten" }, alpha: 1.5 })).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    await expect(search({ query: { file: Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0x01, 0x02]) } })).rejects.toMatchObject({ code: "UNSUPPORTED_MEDIA_TYPE" });
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#000" } }).png().toBuffer();
    await expect(search({ query: { file: png.subarray(0, 40) } })).rejects.toMatchObject({ code: "CORRUPT_MEDIA" });
    await expect(search({ query: { file: Buffer.alloc(0) } })).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    // No model serves audio in this encoder.
    const wav = encodeWav(new Float32Array(1600), 16000);
    await expect(search({ query: { file: wav } })).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
  });
});
