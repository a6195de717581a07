import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type * as lancedb from "@lancedb/lancedb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { LanceDbVectorStore } from "../../services/search/lancedb-vector-store.ts";
import type { VectorRecord } from "../../services/search/vector-store.ts";

// What an embedded store's write costs besides the write (issue #20, encode): the table is not counted on every
// write to see whether it passed the vector index's threshold, only now and then, and as soon as this process's
// writes may have taken it past.

const THRESHOLD = 40;
let dir = "";
let store: LanceDbVectorStore;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-lancedb-writes-"));
  store = await LanceDbVectorStore.open(dir, { indexMinRows: THRESHOLD });
});
afterAll(async () => {
  await store?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const record = (assetId: string, vector: number[], extra: Partial<VectorRecord> = {}): VectorRecord => ({
  assetId, space: "writes", chunk: 0, vector: Float32Array.from(vector), model: "m", modality: "IMAGE", text: `asset ${assetId}`, tags: ["t"], metadata: { a: { b: 1 } }, ...extra,
});

/** The store's own handle on the space's table (opened by the first write). */
async function tableOf(space: string): Promise<lancedb.Table> {
  return (store as unknown as { tables: Map<string, Promise<lancedb.Table>> }).tables.get(space)!;
}

describe("embedded store writes", () => {
  it("count the table once, not on every write, until this process's writes may pass the index threshold", async () => {
    const projectId = `p-${randomUUID()}`;
    await store.upsert(projectId, [record("first", [1, 0, 0, 0])], { allNew: true });
    await store.indexSettled("writes");
    const countRows = vi.spyOn(await tableOf("writes"), "countRows");
    // 38 rows in all: below the threshold, and counted a moment ago.
    for (let index = 0; index < 37; index++) {
      await store.upsert(projectId, [record(`a${index}`, [0, 1, index, 0])], { allNew: index % 2 === 0 });
      await store.indexSettled("writes");
    }
    expect(countRows).not.toHaveBeenCalled();
    // 40: these two may take it past, so it is counted (and the index built in the background).
    await store.upsert(projectId, [record("b1", [0, 0, 1, 0]), record("b2", [0, 0, 0, 1])], { allNew: true });
    expect(countRows).toHaveBeenCalledTimes(1);
    await store.indexSettled("writes");
    countRows.mockRestore();
  });

  it("store every column as given, the vector's float32 values exactly", async () => {
    const projectId = `p-${randomUUID()}`;
    const vector = [0.1, -0.25, 1 / 3, 7];
    await store.upsert(projectId, [record("exact", vector, { chunk: 3, text: "it's \"quoted\", café ✓", tags: ["x", "y"], metadata: { k: ["v", 2], n: null } })], { allNew: true });
    await store.upsert(projectId, [record("exact", [1, 1, 1, 1], { chunk: 3, text: "replaced" })]);
    const table = await tableOf("writes");
    const rows = await table.query().where(`project_id = '${projectId}'`).toArray();
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect({ ...row, tags: [...row.tags], metadata_pairs: [...row.metadata_pairs], vector: [...row.vector] }).toMatchObject({
      project_id: projectId, asset_id: "exact", space: "writes", chunk: 3, model: "m", modality: "IMAGE", text: "replaced", tags: ["t"], metadata_pairs: ["a.b=1"], vector: [1, 1, 1, 1],
    });
    const second = `p-${randomUUID()}`;
    await store.upsert(second, [record("exact", vector, { chunk: 3, text: "it's \"quoted\", café ✓", tags: ["x", "y"], metadata: { k: ["v", 2], n: null } })]);
    const [kept] = await table.query().where(`project_id = '${second}'`).toArray();
    expect({ text: kept.text, tags: [...kept.tags], metadata_pairs: [...kept.metadata_pairs], vector: [...kept.vector] }).toEqual({
      text: "it's \"quoted\", café ✓", tags: ["x", "y"], metadata_pairs: ["k=v", "k=2", "n=null"], vector: [...Float32Array.from(vector)],
    });
  });

  it("refuse vectors of another width in one space", async () => {
    await expect(store.upsert(`p-${randomUUID()}`, [record("w1", [1, 0, 0, 0]), record("w2", [1, 0, 0])])).rejects.toThrow(/one width/);
  });
});
