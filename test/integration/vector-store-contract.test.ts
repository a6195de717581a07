import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import weaviate from "weaviate-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LanceDbVectorStore } from "../../services/search/lancedb-vector-store.ts";
import type { VectorRecord, VectorStore } from "../../services/search/vector-store.ts";
import { isVectorStoreUnreachable } from "../../services/search/vector-store-outage.ts";
import { WeaviateVectorStore, type VectorIndexKind } from "../../services/search/weaviate-vector-store.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

/** One behaviour, two real stores: the same suite runs against Weaviate and against LanceDB. */
/** Weaviate with its own collection, so the test spaces do not become named vectors of the app's collection. */
const weaviateAdapter = (vectorIndex: VectorIndexKind) => async () => {
  const store = await WeaviateVectorStore.connect({
    url: TEST_WEAVIATE_URL,
    grpcPort: TEST_WEAVIATE_GRPC_PORT,
    collection: `TesseraContractTest_${vectorIndex}`,
    vectorIndex,
    batchSize: 7, // several batches per upsert, so batching and its backpressure loop are exercised
  });
  return { store, cleanup: async () => {} };
};

/** One behaviour, real stores: the same suite runs against Weaviate (both index kinds) and against LanceDB. */
const adapters: Array<[string, () => Promise<{ store: VectorStore; cleanup(): Promise<void> }>]> = [
  ["weaviate (flat index)", weaviateAdapter("flat")],
  ["weaviate (hnsw index)", weaviateAdapter("hnsw")],
  [
    "embedded (LanceDB)",
    async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-vectors-"));
      const store = await LanceDbVectorStore.open(dir);
      return { store, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
    },
  ],
];

/** A unit vector along one axis (plus a little of another), so nearest neighbours are known exactly. */
function axis(dimensions: number, index: number, lean = 0, towards = (index + 1) % dimensions): number[] {
  const vector = new Array<number>(dimensions).fill(0);
  vector[index] = 1;
  vector[towards] = lean;
  return vector;
}

function record(assetId: string, overrides: Partial<VectorRecord> & { vector: number[] }): VectorRecord {
  return {
    assetId,
    space: "contract-text",
    chunk: 0,
    model: "fixture",
    modality: "TEXT",
    text: "",
    tags: [],
    metadata: {},
    ...overrides,
  };
}

describe.each(adapters)("VectorStore contract: %s", (_name, open) => {
  let store: VectorStore;
  let cleanup: () => Promise<void>;
  const projects: string[] = [];
  const newProject = () => {
    const id = randomUUID();
    projects.push(id);
    return id;
  };
  const ids = { cat: randomUUID(), dog: randomUUID(), car: randomUUID(), photo: randomUUID() };

  /** Four assets in one project: three texts and an image, with tags and metadata. */
  async function seed(projectId: string) {
    await store.upsert(projectId, [
      record(ids.cat, { vector: axis(8, 0), text: "a tabby cat sleeps on the sofa", tags: ["pets", "indoor"], metadata: { lang: "en", source: { kind: "blog" } } }),
      record(ids.cat, { chunk: 1, vector: axis(8, 0, 0.5), text: "the cat purrs", tags: ["pets", "indoor"], metadata: { lang: "en", source: { kind: "blog" } } }),
      record(ids.dog, { vector: axis(8, 0, 0.9), text: "a dog runs in the park", tags: ["pets"], metadata: { lang: "de", year: 2024 } }),
      record(ids.car, { vector: axis(8, 3), text: "a red sports car on the motorway", tags: ["vehicles"], metadata: { lang: "en", colors: ["red", "black"] } }),
      record(ids.photo, { space: "contract-image", vector: axis(4, 1), modality: "IMAGE", text: "OCR: STOP", tags: ["pets"], metadata: {} }),
    ]);
  }

  beforeAll(async () => {
    ({ store, cleanup } = await open());
    await store.ensureSchema([
      { name: "contract-text", dimensions: 8 },
      { name: "contract-image", dimensions: 4 },
    ]);
  });

  afterAll(async () => {
    for (const projectId of projects) await store.deleteProject(projectId);
    await store.close();
    await cleanup();
  });

  it("answers health", async () => {
    await expect(store.health()).resolves.toBeUndefined();
  });

  it("finds the nearest vectors first, with their asset, chunk, modality, text and cosine score", async () => {
    const projectId = newProject();
    await seed(projectId);
    const hits = await store.nearVector(projectId, { space: "contract-text", vector: axis(8, 0), limit: 3 });
    expect(hits.map((hit) => [hit.assetId, hit.chunk])).toEqual([
      [ids.cat, 0],
      [ids.cat, 1],
      [ids.dog, 0],
    ]);
    expect(hits[0]).toMatchObject({ space: "contract-text", modality: "TEXT", text: "a tabby cat sleeps on the sofa" });
    expect(hits[0]!.score).toBeCloseTo(1, 4);
    expect(hits[2]!.score).toBeCloseTo(1 / Math.sqrt(1 + 0.81), 4);
    const images = await store.nearVector(projectId, { space: "contract-image", vector: axis(4, 1), limit: 10 });
    expect(images.map((hit) => [hit.assetId, hit.modality])).toEqual([[ids.photo, "IMAGE"]]);
  });

  it("upserts idempotently by asset, space and chunk: writing again replaces, never duplicates", async () => {
    const projectId = newProject();
    await seed(projectId);
    expect(await store.count(projectId)).toBe(5);
    await seed(projectId);
    expect(await store.count(projectId)).toBe(5);
    await store.upsert(projectId, [record(ids.car, { vector: axis(8, 5), text: "a blue bicycle" })]);
    expect(await store.count(projectId)).toBe(5);
    expect(await store.count(projectId, { assetId: ids.car })).toBe(1);
    const [hit] = await store.nearVector(projectId, { space: "contract-text", vector: axis(8, 5), limit: 1 });
    expect(hit).toMatchObject({ assetId: ids.car, text: "a blue bicycle" });
    expect(hit!.score).toBeCloseTo(1, 4);
  });

  it("appends records of new assets (allNew) as searchable, counted and deletable as any, beside replaced ones", async () => {
    const projectId = newProject();
    await seed(projectId);
    const fresh = randomUUID();
    await store.upsert(projectId, [record(fresh, { vector: axis(8, 6), text: "a fresh arrival" }), record(fresh, { chunk: 1, vector: axis(8, 6, 0.3) })], {
      allNew: true,
    });
    expect(await store.count(projectId)).toBe(7);
    const [hit] = await store.nearVector(projectId, { space: "contract-text", vector: axis(8, 6), limit: 1 });
    expect(hit).toMatchObject({ assetId: fresh, chunk: 0, text: "a fresh arrival" });
    // Written again as a replacement (a re-ingest), it stays one row per chunk.
    await store.upsert(projectId, [record(fresh, { vector: axis(8, 6), text: "fresh, re-ingested" })]);
    expect(await store.count(projectId, { assetId: fresh })).toBe(2);
    expect(await store.deleteAsset(projectId, fresh)).toBe(2);
    expect(await store.count(projectId)).toBe(5);
  });

  it("imports a batch larger than one request and counts every vector", async () => {
    const projectId = newProject();
    const many = Array.from({ length: 50 }, (_, index) =>
      record(randomUUID(), { chunk: index, vector: axis(8, index % 8, index / 100), text: `item ${index}` }),
    );
    await store.upsert(projectId, many);
    expect(await store.count(projectId)).toBe(50);
    expect(await store.count(projectId, { space: "contract-text" })).toBe(50);
    expect(await store.count(projectId, { space: "contract-image" })).toBe(0);
  });

  it("deletes every vector of one asset, in every space, and nothing else", async () => {
    const projectId = newProject();
    await seed(projectId);
    await store.upsert(projectId, [record(ids.cat, { space: "contract-image", vector: axis(4, 2), modality: "TEXT" })]);
    expect(await store.deleteAsset(projectId, ids.cat)).toBe(3);
    expect(await store.count(projectId, { assetId: ids.cat })).toBe(0);
    expect(await store.count(projectId)).toBe(3);
    const hits = await store.nearVector(projectId, { space: "contract-text", vector: axis(8, 0), limit: 10 });
    expect(hits.map((hit) => hit.assetId)).not.toContain(ids.cat);
    expect(await store.deleteAsset(projectId, ids.cat)).toBe(0);
  });

  it("filters by modality, every tag, metadata (nested keys, array elements) and excluded assets", async () => {
    const projectId = newProject();
    await seed(projectId);
    const near = (filter: object) =>
      store
        .nearVector(projectId, { space: "contract-text", vector: axis(8, 0), limit: 10, filter })
        .then((hits) => [...new Set(hits.map((hit) => hit.assetId))].sort());
    expect(await near({ tags: ["pets"] })).toEqual([ids.cat, ids.dog].sort());
    expect(await near({ tags: ["pets", "indoor"] })).toEqual([ids.cat]);
    expect(await near({ tags: ["nope"] })).toEqual([]);
    expect(await near({ metadata: { lang: "en" } })).toEqual([ids.cat, ids.car].sort());
    expect(await near({ metadata: { "source.kind": "blog" } })).toEqual([ids.cat]);
    expect(await near({ metadata: { source: { kind: "blog" } } })).toEqual([ids.cat]);
    expect(await near({ metadata: { year: 2024 } })).toEqual([ids.dog]);
    expect(await near({ metadata: { colors: "red" } })).toEqual([ids.car]);
    expect(await near({ metadata: { lang: "en" }, tags: ["vehicles"] })).toEqual([ids.car]);
    expect(await near({ modalities: ["IMAGE"] })).toEqual([]);
    expect(await near({ modalities: ["TEXT", "IMAGE"] })).toEqual([ids.car, ids.cat, ids.dog].sort());
    expect(await near({ excludeAssetIds: [ids.cat, ids.dog] })).toEqual([ids.car]);
  });

  it("mixes BM25 and vectors by alpha: 1 ranks by vector, 0 by keywords", async () => {
    const projectId = newProject();
    await seed(projectId);
    // The vector points at the cat; the words point at the car.
    const query = { space: "contract-text", vector: axis(8, 0), text: "sports car motorway", limit: 3 };
    const byVector = await store.hybrid(projectId, { ...query, alpha: 1 });
    expect(byVector[0]!.assetId).toBe(ids.cat);
    const byKeywords = await store.hybrid(projectId, { ...query, alpha: 0 });
    expect(byKeywords[0]!.assetId).toBe(ids.car);
    expect(byKeywords.map((hit) => hit.assetId)).not.toContain(ids.dog); // no shared words, no BM25 score
    const mixed = await store.hybrid(projectId, { ...query, alpha: 0.5, limit: 5 });
    expect(mixed.map((hit) => hit.assetId)).toContain(ids.car);
    expect(mixed.map((hit) => hit.assetId)).toContain(ids.cat);
    for (const hit of mixed) expect(hit.score).toBeGreaterThanOrEqual(0);
    const filtered = await store.hybrid(projectId, { ...query, alpha: 0, filter: { tags: ["pets"] } });
    expect(filtered.map((hit) => hit.assetId)).not.toContain(ids.car);
  });

  it("returns an asset's stored vectors, so an asset query needs no re-encoding", async () => {
    const projectId = newProject();
    await seed(projectId);
    const vectors = await store.vectorsOf(projectId, ids.cat);
    expect(vectors.map((vector) => [vector.space, vector.chunk, vector.text])).toEqual([
      ["contract-text", 0, "a tabby cat sleeps on the sofa"],
      ["contract-text", 1, "the cat purrs"],
    ]);
    expect(Array.from(vectors[1]!.vector)).toEqual(axis(8, 0, 0.5));
    expect(await store.vectorsOf(projectId, randomUUID())).toEqual([]);
  });

  it("keeps projects apart: project B never sees, counts, reads or deletes project A's vectors", async () => {
    const projectA = newProject();
    const projectB = newProject();
    await seed(projectA);
    const query = { space: "contract-text", vector: axis(8, 0), limit: 10 };
    // B has no vectors at all yet (no tenant in Weaviate): empty answers, not errors.
    expect(await store.nearVector(projectB, query)).toEqual([]);
    expect(await store.hybrid(projectB, { ...query, text: "cat", alpha: 0.5 })).toEqual([]);
    expect(await store.count(projectB)).toBe(0);
    expect(await store.vectorsOf(projectB, ids.cat)).toEqual([]);
    expect(await store.deleteAsset(projectB, ids.cat)).toBe(0);
    // B writes the very same asset ids: still two separate sets.
    await store.upsert(projectB, [record(ids.cat, { vector: axis(8, 7), text: "project b only" })]);
    expect(await store.count(projectA)).toBe(5);
    expect(await store.count(projectB)).toBe(1);
    const seenByB = await store.hybrid(projectB, { ...query, text: "tabby cat sofa", alpha: 0.5 });
    expect(seenByB.map((hit) => hit.text)).toEqual(["project b only"]);
    expect(await store.deleteAsset(projectB, ids.cat)).toBe(1);
    expect(await store.count(projectA, { assetId: ids.cat })).toBe(2);
    const seenByA = await store.nearVector(projectA, query);
    expect(seenByA.map((hit) => hit.text)).not.toContain("project b only");
  });

  it("stays correct over many small writes (the embedded store compacts every 100)", async () => {
    const projectId = newProject();
    for (let index = 0; index < 120; index++) {
      await store.upsert(projectId, [record(`asset-${index}`, { vector: axis(8, index % 8, 0.01 * index), text: `note number${index}` })]);
    }
    await store.upsert(projectId, [record("asset-7", { vector: axis(8, 7), text: "rewritten seven" })]);
    expect(await store.count(projectId)).toBe(120);
    const [byWord] = await store.hybrid(projectId, { space: "contract-text", vector: axis(8, 0), text: "number119", alpha: 0, limit: 1 });
    expect(byWord?.assetId).toBe("asset-119");
    const [rewritten] = await store.hybrid(projectId, { space: "contract-text", vector: axis(8, 0), text: "rewritten", alpha: 0, limit: 1 });
    expect(rewritten?.assetId).toBe("asset-7");
  });

  it("adds a space that appears after the schema was made", async () => {
    const projectId = newProject();
    const space = "contract-late";
    await store.upsert(projectId, [record(ids.dog, { space, vector: axis(3, 2), text: "late" })]);
    await store.ensureSchema([{ name: space, dimensions: 3 }]);
    const hits = await store.nearVector(projectId, { space, vector: axis(3, 2), limit: 5 });
    expect(hits.map((hit) => hit.text)).toEqual(["late"]);
    expect(await store.nearVector(projectId, { space: "never-written", vector: axis(3, 2), limit: 5 })).toEqual([]);
  });
});

describe("Weaviate: an outage or a bad request", () => {
  // The index stage retries only outages: a write Weaviate refuses must not read as one, or it would wait minutes.
  // (The embedded store takes a vector of the wrong length without an error: not covered here.)
  it("refuses a vector of the wrong length with an error that does not read as an outage", async () => {
    const { store } = await weaviateAdapter("flat")();
    const projectId = randomUUID();
    try {
      await store.upsert(projectId, [record(randomUUID(), { vector: axis(8, 0) })]);
      const refused = await store.upsert(projectId, [record(randomUUID(), { vector: axis(5, 0) })]).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(Error);
      expect(isVectorStoreUnreachable(refused)).toBe(false);
    } finally {
      await store.deleteProject(projectId);
      await store.close();
    }
  });

  it("a Weaviate that nothing answers for fails writes and reads with errors that read as an outage", async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const store = await WeaviateVectorStore.connect({ url: `http://127.0.0.1:${closed}`, grpcPort: closed, collection: "TesseraContractTest_flat" });
    try {
      for (const call of [() => store.count(randomUUID()), () => store.upsert(randomUUID(), [record("asset", { vector: axis(8, 1) })])]) {
        const error = await call().then(() => undefined, (caught: unknown) => caught);
        expect(isVectorStoreUnreachable(error)).toBe(true);
      }
    } finally {
      await store.close();
    }
  }, 60_000);
});

describe("Weaviate vector index kind", () => {
  it.each(["flat", "hnsw"] as const)("gives every space, first or added later, the configured %s index", async (vectorIndex) => {
    const collection = `TesseraIndexKindTest_${vectorIndex}`;
    const client = await weaviate.connectToLocal({ host: new URL(TEST_WEAVIATE_URL).hostname, port: Number(new URL(TEST_WEAVIATE_URL).port), grpcPort: TEST_WEAVIATE_GRPC_PORT });
    await client.collections.delete(collection);
    const store = await WeaviateVectorStore.connect({ url: TEST_WEAVIATE_URL, grpcPort: TEST_WEAVIATE_GRPC_PORT, collection, vectorIndex });
    try {
      await store.ensureSchema([{ name: "first", dimensions: 4 }]);
      await store.upsert(randomUUID(), [record("asset", { space: "added-later", vector: axis(4, 1) })]);
      const { vectorizers } = await client.collections.use(collection).config.get();
      expect(Object.fromEntries(Object.entries(vectorizers).map(([name, config]) => [name, config.indexType]))).toEqual({
        first: vectorIndex,
        added_later: vectorIndex,
      });
    } finally {
      await store.close();
      await client.collections.delete(collection);
      await client.close();
    }
  });
});
