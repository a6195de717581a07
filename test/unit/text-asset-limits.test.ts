import { describe, expect, it } from "vitest";
import type { Asset } from "../../services/core/database.ts";
import { loadConfig } from "../../services/core/config.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import type { ModelRuntime } from "../../services/models/model-runtime.ts";
import { decodeStage } from "../../services/worker/ingest/decode-stage.ts";
import { encodeStage } from "../../services/worker/ingest/encode-stage.ts";
import { indexStage } from "../../services/worker/ingest/index-stage.ts";
import type { IngestState } from "../../services/worker/ingest/ingest-stage.ts";
import type { JobHandlerContext } from "../../services/worker/job-handler.ts";

const asset = { id: "a1", projectId: "p1", sha256: "s", modality: "TEXT", mimeType: "text/plain", media: {}, metadata: {}, tags: [] } as unknown as Asset;
const newState = (): IngestState => ({ derivedText: [], vectors: [] });

/** Ten megabytes of prose: sentences of words, about 11,000 chunks of 1000 characters. */
const tenMegabytes = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(Math.ceil(10_000_000 / 65)).slice(0, 10_000_000);

function context(env: Record<string, string>, models?: Partial<ModelRuntime>) {
  const bytes = Buffer.from(tenMegabytes, "utf8");
  const app = {
    config: loadConfig(env),
    blobs: { localPath: async () => "/nonexistent", read: async () => bytes },
    models,
  };
  return { app, logger: { warn() {}, info() {} } } as unknown as JobHandlerContext;
}

describe("a text asset has a bounded number of chunks (issue #14, finding 4)", () => {
  it("indexes the first TEXT_MAX_CHUNKS chunks of a 10 MB text and says on the media record that it was truncated", async () => {
    const state = newState();
    await decodeStage.run(asset, state, context({ TEXT_MAX_CHUNKS: "500" }));
    expect(state.text!.chunks.length).toBe(500);
    const decoded = (state.media as { decoded: { text: Record<string, unknown> } }).decoded.text;
    expect(decoded).toMatchObject({ characters: 10_000_000, chunks: 500, truncated: true, maxChunks: 500 });
    expect(decoded.indexedCharacters).toBe(state.text!.chunks.at(-1)!.end);
    expect(decoded.indexedCharacters as number).toBeLessThan(600_000);
  });

  it("encodes a long text in bounded batches, never all its chunks in one call", async () => {
    const calls: number[] = [];
    const models = {
      async embedText(texts: string[]) {
        calls.push(texts.length);
        return [{ space: "sentence", model: "m", vectors: texts.map(() => new Float32Array([1, 0])) }];
      },
      async embedImages() { return []; },
      list: () => [],
    };
    const state = newState();
    const ctx = context({ TEXT_MAX_CHUNKS: "2000" }, models as unknown as ModelRuntime);
    await decodeStage.run(asset, state, ctx);
    await encodeStage.run(asset, state, ctx);
    expect(calls.reduce((sum, size) => sum + size, 0)).toBe(2000);
    expect(Math.max(...calls)).toBeLessThanOrEqual(256);
    // Chunk 0 (the whole text, fused) and one vector per chunk.
    expect(state.vectors).toHaveLength(2001);
  });

  it("fails an asset that would write more than ASSET_MAX_VECTORS vectors, naming the variable, before writing any", async () => {
    const state = newState();
    state.vectors = Array.from({ length: 11 }, (_, chunk) => ({ space: "sentence", model: "m", vector: new Float32Array([1, 0]), chunk }));
    const error = await indexStage.run(asset, state, context({ ASSET_MAX_VECTORS: "10" })).then(() => null, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    expect((error as TesseraError).details).toMatchObject({ variable: "ASSET_MAX_VECTORS", limit: 10, actual: 11 });
  });
});
