import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type * as lancedb from "@lancedb/lancedb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { LanceDbVectorStore } from "../../services/search/lancedb-vector-store.ts";
import type { VectorRecord } from "../../services/search/vector-store.ts";

// LanceDB's add and mergeInsert ask the native table for its schema on every write (issue #20, encode): the store
// fetches it once per table and keeps it, and forgets it when a write fails.

let dir = "";
let store: LanceDbVectorStore;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-lancedb-schema-"));
  store = await LanceDbVectorStore.open(dir, { indexMinRows: 0 });
});
afterAll(async () => {
  await store?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const record = (assetId: string, vector: number[]): VectorRecord => ({
  assetId, space: "kept", chunk: 0, vector: Float32Array.from(vector), model: "m", modality: "IMAGE", text: assetId, tags: [], metadata: {},
});

/** The native table under the store's handle on the space's table: where every schema fetch goes. */
async function nativeOf(space: string): Promise<{ schema: () => Promise<unknown> }> {
  const table = await (store as unknown as { tables: Map<string, Promise<lancedb.Table>> }).tables.get(space)!;
  return (table as unknown as { inner: { schema: () => Promise<unknown> } }).inner;
}

describe("embedded store writes", () => {
  it("fetch a table's schema once for many writes, appends and merges alike, and again after a failed write", async () => {
    const projectId = `p-${randomUUID()}`;
    await store.ensureSchema([{ name: "kept", dimensions: 4 }]);
    const fetches = vi.spyOn(await nativeOf("kept"), "schema");
    for (let index = 0; index < 10; index++) {
      await store.upsert(projectId, [record(`a${index}`, [1, index, 0, 0])], { allNew: index % 2 === 0 });
    }
    expect(fetches).toHaveBeenCalledTimes(1);
    expect(await store.count(projectId, { space: "kept" })).toBe(10);

    // A write that fails (here the native add) forgets the kept schema: the next write fetches it again.
    const native = (await nativeOf("kept")) as unknown as { add: (...args: unknown[]) => Promise<unknown> };
    const add = vi.spyOn(native, "add").mockRejectedValueOnce(new Error("table gone"));
    await expect(store.upsert(projectId, [record("failed", [0, 1, 0, 0])], { allNew: true })).rejects.toThrow(/table gone/);
    add.mockRestore();
    await store.upsert(projectId, [record("after", [0, 0, 1, 0])], { allNew: true });
    expect(fetches).toHaveBeenCalledTimes(2);
    expect(await store.count(projectId, { space: "kept" })).toBe(11);
    fetches.mockRestore();
  });
});
