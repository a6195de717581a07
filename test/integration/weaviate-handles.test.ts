import { randomUUID } from "node:crypto";
import type { WeaviateClient } from "weaviate-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { VectorRecord } from "../../services/search/vector-store.ts";
import { WeaviateVectorStore } from "../../services/search/weaviate-vector-store.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

/*
 * weaviate-client builds every sub-API of a collection handle (query, data, aggregate, config, generate, tenants)
 * each time one is asked for; the adapter keeps its collection and each project's tenant instead of building two
 * handles per call (issue #20: a search is two calls). Real Weaviate: the handles must still reach the right tenant.
 */

const axis = (index: number, lean = 0) => {
  const vector = new Array<number>(8).fill(0);
  vector[index] = 1;
  vector[(index + 1) % 8] = lean;
  return vector;
};

const record = (assetId: string, vector: number[]): VectorRecord => ({
  assetId,
  space: "handle-text",
  chunk: 0,
  vector,
  model: "fixture",
  modality: "TEXT",
  text: `text of ${assetId}`,
  tags: [],
  metadata: {},
});

describe("Weaviate adapter: collection and tenant handles", () => {
  let store: WeaviateVectorStore;
  const projects = { a: randomUUID(), b: randomUUID() };
  const ids = { a1: randomUUID(), a2: randomUUID(), b1: randomUUID() };

  beforeAll(async () => {
    store = await WeaviateVectorStore.connect({ url: TEST_WEAVIATE_URL, grpcPort: TEST_WEAVIATE_GRPC_PORT, collection: "TesseraHandleTest" });
    await store.upsert(projects.a, [record(ids.a1, axis(0)), record(ids.a2, axis(0, 0.5))]);
    await store.upsert(projects.b, [record(ids.b1, axis(0, 0.1))]);
  });

  afterAll(async () => {
    await store.deleteProject(projects.a);
    await store.deleteProject(projects.b);
    await store.close();
  });

  it("searches build no collection handle per call, and each project's still sees only its own vectors", async () => {
    const client = (store as unknown as { client: WeaviateClient }).client;
    const use = vi.spyOn(client.collections, "use");
    try {
      for (let round = 0; round < 3; round++) {
        for (const [project, own] of [[projects.a, [ids.a1, ids.a2]], [projects.b, [ids.b1]]] as const) {
          const stored = await store.vectorsOf(project, own[0]!);
          expect(stored).toHaveLength(1);
          const hits = await store.nearVector(project, { space: "handle-text", vector: stored[0]!.vector, limit: 10, filter: { excludeAssetIds: [own[0]!] } });
          expect(hits.map((hit) => hit.assetId)).toEqual(own.slice(1));
        }
      }
      // Before: two handles per call (the tenant, and one more for the filter builder), 24 here.
      expect(use).not.toHaveBeenCalled();
    } finally {
      use.mockRestore();
    }
    expect(await store.count(projects.a)).toBe(2);
  });

  it("a project deleted and written again is searched in its new tenant", async () => {
    const project = randomUUID();
    const id = randomUUID();
    await store.upsert(project, [record(id, axis(2))]);
    expect((await store.nearVector(project, { space: "handle-text", vector: axis(2), limit: 5 })).map((hit) => hit.assetId)).toEqual([id]);
    await store.deleteProject(project);
    expect(await store.nearVector(project, { space: "handle-text", vector: axis(2), limit: 5 })).toEqual([]);
    const again = randomUUID();
    await store.upsert(project, [record(again, axis(3))]);
    expect((await store.nearVector(project, { space: "handle-text", vector: axis(3), limit: 5 })).map((hit) => hit.assetId)).toEqual([again]);
    await store.deleteProject(project);
  });
});
