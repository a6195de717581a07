import { describe, expect, it } from "vitest";
import type { VectorRecord, VectorStore } from "../../services/search/vector-store.ts";
import { writeVectors } from "../../services/worker/ingest/vector-writes.ts";

function record(assetId: string): VectorRecord {
  return { assetId, space: "image-text", chunk: 0, vector: new Float32Array([1, 0]), model: "clip", modality: "IMAGE", text: "", tags: [], metadata: {} };
}

/** A store that records each upsert call, and fails one project's writes when told. */
function fakeStore(failProject?: string) {
  const calls: Array<{ projectId: string; assets: string[]; allNew?: boolean }> = [];
  const store = {
    async upsert(projectId: string, records: VectorRecord[], options: { allNew?: boolean } = {}) {
      calls.push({ projectId, assets: records.map((r) => r.assetId), ...(options.allNew ? { allNew: true } : {}) });
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (projectId === failProject) throw new Error(`store down for ${projectId}`);
    },
  } as unknown as VectorStore;
  return { store, calls };
}

describe("writeVectors: concurrent index stages write together", () => {
  it("a lone write goes at once; writes queued behind a running one go as one upsert per project", async () => {
    const { store, calls } = fakeStore();
    await writeVectors(store, "p1", [record("a0")]);
    expect(calls).toEqual([{ projectId: "p1", assets: ["a0"] }]);

    calls.length = 0;
    await Promise.all([
      writeVectors(store, "p1", [record("a1")]), // runs alone
      writeVectors(store, "p1", [record("a2")]), // these three queue behind it
      writeVectors(store, "p2", [record("b1")]),
      writeVectors(store, "p1", [record("a3")]),
    ]);
    expect(calls).toHaveLength(3);
    expect(calls[0]).toEqual({ projectId: "p1", assets: ["a1"] });
    expect(calls.slice(1).sort((x, y) => x.projectId.localeCompare(y.projectId))).toEqual([
      { projectId: "p1", assets: ["a2", "a3"] },
      { projectId: "p2", assets: ["b1"] },
    ]);
  });

  it("a failed write fails only the jobs of its project", async () => {
    const { store } = fakeStore("bad");
    const outcomes = await Promise.allSettled([
      writeVectors(store, "good", [record("g0")]),
      writeVectors(store, "good", [record("g1")]),
      writeVectors(store, "bad", [record("b1")]),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
    expect((outcomes[2] as PromiseRejectedResult).reason.message).toBe("store down for bad");
  });

  it("appends for new assets and replacements go as separate upserts, so a replacement is never taken for an append", async () => {
    const { store, calls } = fakeStore();
    await Promise.all([
      writeVectors(store, "p1", [record("a1")], { allNew: true }), // runs alone
      writeVectors(store, "p1", [record("a2")], { allNew: true }),
      writeVectors(store, "p1", [record("a3")]),
      writeVectors(store, "p1", [record("a4")], { allNew: true }),
    ]);
    expect(calls[0]).toEqual({ projectId: "p1", assets: ["a1"], allNew: true });
    expect(calls.slice(1).sort((x, y) => Number(Boolean(x.allNew)) - Number(Boolean(y.allNew)))).toEqual([
      { projectId: "p1", assets: ["a3"] },
      { projectId: "p1", assets: ["a2", "a4"], allNew: true },
    ]);
  });

  it("a writer that gives up stops waiting at once, and the writes behind it are not held up by its hung upsert", async () => {
    // A store that hangs (Weaviate's client retrying through an outage) until the upsert's signal says nobody waits.
    const calls: Array<{ assets: string[]; signal?: AbortSignal }> = [];
    const store = {
      upsert(_projectId: string, records: VectorRecord[], options: { signal?: AbortSignal } = {}) {
        calls.push({ assets: records.map((r) => r.assetId), signal: options.signal });
        if (records[0]!.assetId !== "hung") return Promise.resolve();
        return new Promise<void>((_, reject) => options.signal?.addEventListener("abort", () => reject(options.signal!.reason)));
      },
    } as unknown as VectorStore;
    const first = new AbortController();
    const hung = writeVectors(store, "p1", [record("hung")], { signal: first.signal });
    const queued = new AbortController();
    const leaving = writeVectors(store, "p1", [record("left")], { signal: queued.signal }); // queued behind it
    const behind = writeVectors(store, "p2", [record("behind")]); // another job's write, queued too
    queued.abort(new Error("budget spent"));
    await expect(leaving).rejects.toThrow("budget spent");
    first.abort(new Error("budget spent"));
    await expect(hung).rejects.toThrow("budget spent");
    await expect(behind).resolves.toBeUndefined();
    // The write given up while it queued never went out.
    expect(calls.map((call) => call.assets)).toEqual([["hung"], ["behind"]]);
    expect(calls[0]!.signal?.aborted).toBe(true);
  });
});
