import { describe, expect, it } from "vitest";
import { loadConfig } from "../../services/core/config.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { ingestText, type TextIngestDependencies } from "../../services/assets/ingest-sources.ts";

import { crossModalSearch, type QueryEncoder } from "../../services/search/cross-modal-search.ts";
import type { VectorStore } from "../../services/search/vector-store.ts";

/** Anything touched fails the test: a capped input must be refused before any work. */
const untouchable = new Proxy({}, {
  get(_target, name) {
    throw new Error(`touched ${String(name)} before the input was checked`);
  },
});

async function refusal(promise: Promise<unknown>): Promise<TesseraError> {
  const error = await promise.then(() => null, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(TesseraError);
  return error as TesseraError;
}

describe("search text is capped before any work (issue #14, finding 2)", () => {
  const config = loadConfig({ SEARCH_MAX_TEXT_CHARS: "4000" });

  it("refuses a text over SEARCH_MAX_TEXT_CHARS with PAYLOAD_TOO_LARGE naming the variable, without encoding it", async () => {
    const encoder = untouchable as QueryEncoder;
    const store = untouchable as VectorStore;
    const started = performance.now();
    const error = await refusal(crossModalSearch(store, encoder, "project", { query: { text: "word ".repeat(20_000) }, limits: config }));
    expect(performance.now() - started).toBeLessThan(50);
    expect(error.code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    expect(error.message).toContain("SEARCH_MAX_TEXT_CHARS");
    expect(error.details).toMatchObject({ variable: "SEARCH_MAX_TEXT_CHARS", limit: 4000, actual: 100_000 });
  });

  it("takes a text at the cap", async () => {
    const seen: string[][] = [];
    const encoder = {
      async embedText(texts: string[]) {
        seen.push(texts);
        return [{ space: "sentence", model: "m", vectors: [new Float32Array([1, 0])] }];
      },
    } as unknown as QueryEncoder;
    // A text query is hybrid by default (issue #21): the vector spaces and a BM25 ranking.
    const store = { nearVector: async () => [], hybrid: async () => [] } as unknown as VectorStore;
    const text = "a".repeat(4000);
    await expect(crossModalSearch(store, encoder, "project", { query: { text }, limits: config })).resolves.toEqual([]);
    expect(seen).toEqual([[text]]);
  });
});

describe("ingest metadata and tags are capped before any work", () => {
  const app = (overrides: Record<string, string> = {}) =>
    ({ db: untouchable, blobs: untouchable, queues: untouchable, logger: untouchable, config: loadConfig(overrides) }) as unknown as TextIngestDependencies;

  it("refuses metadata over INGEST_MAX_METADATA_BYTES", async () => {
    const error = await refusal(ingestText(app({ INGEST_MAX_METADATA_BYTES: "1024" }), "p", "hello", { metadata: { note: "x".repeat(2000) } }));
    expect(error.code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    expect(error.details).toMatchObject({ variable: "INGEST_MAX_METADATA_BYTES", limit: 1024 });
    expect(error.message).toContain("INGEST_MAX_METADATA_BYTES");
  });

  it("refuses more tags than INGEST_MAX_TAGS, and tags over 100 characters", async () => {
    const many = await refusal(ingestText(app({ INGEST_MAX_TAGS: "3" }), "p", "hello", { tags: ["a", "b", "c", "d"] }));
    expect(many.code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    expect(many.details).toMatchObject({ variable: "INGEST_MAX_TAGS", limit: 3, actual: 4 });
    const long = await refusal(ingestText(app(), "p", "hello", { tags: ["t".repeat(101)] }));
    expect(long.code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
  });
});
