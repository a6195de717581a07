import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as lancedb from "@lancedb/lancedb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/core/logger.ts";
import { createModelRuntime } from "../../services/models/local-model-runtime.ts";
import { LanceDbVectorStore } from "../../services/search/lancedb-vector-store.ts";
import type { VectorRecord } from "../../services/search/vector-store.ts";
import { exactTopK, growVectors, realSentences } from "../support/real-sentences.ts";

/**
 * The embedded store's ANN index (IVF_PQ past VECTOR_INDEX_MIN_ROWS), on realistic vectors: the bundled sentence
 * encoder's embeddings of real sentences, grown by blending (test/support/real-sentences.ts). A small threshold
 * stands in for the default 50k.
 */
const SPACE = "sentence";
const THRESHOLD = 1000;
const QUERIES = 40;

let real: Float32Array[] = [];
let queries: Float32Array[] = [];
let dir = "";

function records(vectors: Float32Array[], assetIds: string[]): VectorRecord[] {
  return vectors.map((vector, index) => ({
    assetId: assetIds[index]!, space: SPACE, chunk: 0, vector, model: "use-lite-sentence", modality: "TEXT", text: `row ${index}`, tags: [], metadata: {},
  }));
}

async function vectorIndexOf(space: string) {
  const db = await lancedb.connect(dir);
  try {
    const table = await db.openTable(`space_${space}`);
    return await table.indexStats("vector_idx");
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  const sentences = realSentences(QUERIES + 500);
  const models = createModelRuntime({ modelsDir: path.resolve(import.meta.dirname, "../../models"), logger: createLogger("silent", "test") });
  try {
    const vectors: Float32Array[] = [];
    for (let start = 0; start < sentences.length; start += 128) {
      const spaces = await models.embedText(sentences.slice(start, start + 128));
      vectors.push(...spaces.find((space) => space.space === SPACE)!.vectors);
    }
    queries = vectors.slice(0, QUERIES);
    real = vectors.slice(QUERIES);
  } finally {
    await models.close();
  }
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-ann-"));
}, 300_000);

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe("embedded store: ANN index past VECTOR_INDEX_MIN_ROWS", () => {
  const big = `ann-big-${randomUUID().slice(0, 8)}`;
  const other = `ann-other-${randomUUID().slice(0, 8)}`;
  const small = `ann-small-${randomUUID().slice(0, 8)}`;
  const bigVectors = () => growVectors(real, 1800, 1);
  const bigIds: string[] = Array.from({ length: 1800 }, () => randomUUID());
  const otherIds: string[] = Array.from({ length: 1200 }, () => randomUUID());
  let store: LanceDbVectorStore;

  beforeAll(async () => {
    store = await LanceDbVectorStore.open(dir, { indexMinRows: THRESHOLD, nprobes: 20, refineFactor: 10 });
  });
  afterAll(async () => {
    await store?.close();
  });

  it("stays exact below the threshold and builds the index in the background once the table passes it", async () => {
    const vectors = bigVectors();
    await store.upsert(big, records(vectors.slice(0, 900), bigIds.slice(0, 900)), { allNew: true });
    await store.indexSettled(SPACE);
    expect(await vectorIndexOf(SPACE)).toBeUndefined();
    expect(await store.usesIndex(big, SPACE)).toBe(false);

    await store.upsert(big, records(vectors.slice(900), bigIds.slice(900)), { allNew: true });
    await store.indexSettled(SPACE);
    expect(store.indexErrors.get(SPACE)).toBeUndefined();
    const stats = await vectorIndexOf(SPACE);
    expect(stats).toMatchObject({ indexType: "IVF_PQ", distanceType: "cosine", numIndexedRows: 1800 });
    expect(await store.usesIndex(big, SPACE)).toBe(true);
  }, 300_000);

  it("finds the exact top 10 with recall >= 0.9 through the index (realistic vectors, held-out queries)", async () => {
    const vectors = bigVectors();
    expect(await store.usesIndex(big, SPACE)).toBe(true);
    let found = 0;
    for (const query of queries) {
      const expected = new Set(exactTopK(vectors, query).map((row) => bigIds[row]));
      const hits = await store.nearVector(big, { space: SPACE, vector: query, limit: 10 });
      expect(hits).toHaveLength(10);
      found += hits.filter((hit) => expected.has(hit.assetId)).length;
    }
    expect(found / (queries.length * 10)).toBeGreaterThanOrEqual(0.9);
  }, 300_000);

  it("keeps every project to its own vectors with the index on, for large and small projects alike", async () => {
    // Another project holds the very vectors the first project's queries look for (and the queries themselves).
    const otherVectors = [...queries, ...growVectors(real, 1200 - queries.length, 2)];
    await store.upsert(other, records(otherVectors, otherIds), { allNew: true });
    await store.upsert(small, records(queries.slice(0, 20), Array.from({ length: 20 }, () => randomUUID())), { allNew: true });
    await store.indexSettled(SPACE);
    expect(await store.usesIndex(big, SPACE)).toBe(true);
    expect(await store.usesIndex(other, SPACE)).toBe(true);
    expect(await store.usesIndex(small, SPACE)).toBe(false);
    // A narrow filter leaves too few rows for an IVF probe: exact; excluding the query's own asset changes nothing.
    expect(await store.usesIndex(big, SPACE, { tags: ["rare"] })).toBe(false);
    expect(await store.usesIndex(big, SPACE, { excludeAssetIds: [bigIds[0]!] })).toBe(true);

    const bigSet = new Set<string>(bigIds);
    const otherSet = new Set<string>(otherIds);
    for (const query of queries.slice(0, 20)) {
      const mine = await store.nearVector(big, { space: SPACE, vector: query, limit: 10 });
      expect(mine.length).toBe(10);
      expect(mine.every((hit) => bigSet.has(hit.assetId))).toBe(true);
      const theirs = await store.nearVector(other, { space: SPACE, vector: query, limit: 10 });
      expect(theirs.every((hit) => otherSet.has(hit.assetId))).toBe(true);
      // The other project's copy of the query is its nearest (cosine 1).
      expect(theirs[0]!.score).toBeGreaterThan(0.999);
      const hybrid = await store.hybrid(big, { space: SPACE, vector: query, limit: 10, text: "row", alpha: 0.5 });
      expect(hybrid.every((hit) => bigSet.has(hit.assetId))).toBe(true);
      const tiny = await store.nearVector(small, { space: SPACE, vector: query, limit: 10 });
      expect(tiny).toHaveLength(10);
      expect(tiny.every((hit) => !bigSet.has(hit.assetId) && !otherSet.has(hit.assetId))).toBe(true);
    }
  }, 300_000);

  it("finds rows written after the index was built, before they are folded into it", async () => {
    const freshId = randomUUID();
    const fresh = growVectors(real, real.length + 1, 99).at(-1)!;
    await store.upsert(big, records([fresh], [freshId]), { allNew: true });
    const stats = await vectorIndexOf(SPACE);
    expect(stats!.numUnindexedRows).toBeGreaterThan(0);
    expect(await store.usesIndex(big, SPACE)).toBe(true);
    const hits = await store.nearVector(big, { space: SPACE, vector: fresh, limit: 5 });
    expect(hits[0]).toMatchObject({ assetId: freshId });
    expect(hits[0]!.score).toBeGreaterThan(0.999);
  }, 300_000);
});
