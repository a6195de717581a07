import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadIconSet } from "../../training/emoji-concepts.ts";
import { renderIconPng } from "../../training/icon-renderer.ts";
import { uploadFile } from "../support/graphql-upload.ts";
import { startKserveServer, startOpenAiEmbeddingsServer, type TestInferenceServer } from "../support/inference-servers.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Ingest and search on the real gateway and worker (PostgreSQL, Redis, the embedded vector store) with the
 * image-text space served by inference servers only: images through a KServe v2 server (Triton's protocol),
 * query texts through an OpenAI-compatible embeddings server, both over the same CLIP. MODELS_DIR holds only the
 * two manifests, so no local encoder writes that space; a text query must still find the picture it names.
 */
let t: TestApp;
let key: string;
let triton: TestInferenceServer;
let infinity: TestInferenceServer;
let modelsDir: string;

const SEARCH = `query ($input: SearchInput!) { search(input: $input) { hits { score spaces asset { id modality } } } }`;

beforeAll(async () => {
  [triton, infinity] = await Promise.all([startKserveServer(), startOpenAiEmbeddingsServer()]);
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-remote-search-"));
  const common = { task: "embed", format: "remote", output: { space: "image-text", dimensions: 128, normalize: true }, batch: { maxBatchSize: 8, maxWaitMs: 5 }, priority: 5 };
  await fs.writeFile(
    path.join(modelsDir, "emoji-triton.yaml"),
    JSON.stringify({ ...common, name: "emoji-triton", modality: "IMAGE", adapter: "kserve-v2-encoder", files: {}, remote: { url: triton.url, models: { image: "emoji_vision" } } }),
  );
  await fs.writeFile(
    path.join(modelsDir, "emoji-infinity.yaml"),
    JSON.stringify({ ...common, name: "emoji-infinity", modality: "TEXT", adapter: "openai-embeddings-encoder", files: {}, remote: { url: infinity.url, models: { text: "emoji-clip" } } }),
  );
  t = await startTestApp({ worker: true, env: { MODELS_DIR: modelsDir } });
  ({ key } = await t.createProject());
}, 120_000);

afterAll(async () => {
  await t?.close();
  await triton?.close();
  await infinity?.close();
  await fs.rm(modelsDir, { recursive: true, force: true });
});

describe("search with remote encoders", () => {
  it("lists them as remote, and images indexed through Triton are found by texts encoded on the embeddings server", async () => {
    const { data } = await t.graphql(`{ models { name task device space dimensions } }`, {}, key);
    expect(data.models).toContainEqual({ name: "emoji-triton", task: "embed", device: "remote", space: "image-text", dimensions: 128 });
    expect(data.models).toContainEqual({ name: "emoji-infinity", task: "embed", device: "remote", space: "image-text", dimensions: 128 });

    const noto = loadIconSet("noto");
    const pictures: Record<string, string> = {};
    for (const name of ["cat-face", "red-apple", "soccer-ball", "automobile"]) {
      const png = await renderIconPng(noto, name, 128);
      const response = await uploadFile(t.url, key, { bytes: png, filename: `${name}.png` });
      expect(response.errors).toBeUndefined();
      const { asset, job } = response.data.ingest;
      const done = await eventually(async () => {
        const row = await t.app.db.job.findUnique({ where: { id: job.id } });
        return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
      }, 90_000);
      expect(done).toMatchObject({ status: "SUCCEEDED", error: null });
      pictures[name] = asset.id;
      const rows = await t.app.db.assetEmbedding.findMany({ where: { assetId: asset.id, space: "image-text" } });
      expect(rows.map((row) => row.model)).toEqual(["emoji-triton"]);
    }
    expect(triton.calls.filter((call) => call.path === "/v2/models/emoji_vision/infer").length).toBeGreaterThan(0);

    for (const [query, expected] of [["cat", "cat-face"], ["car", "automobile"]] as const) {
      const result = await t.graphql(SEARCH, { input: { text: query, modalities: ["IMAGE"] } }, key);
      expect(result.errors).toBeUndefined();
      expect(result.data.search.hits[0]).toMatchObject({ asset: { id: pictures[expected], modality: "IMAGE" }, spaces: ["image-text"] });
    }
    expect(infinity.calls.some((call) => (call.body.input as string[]).includes("cat"))).toBe(true);
  });
});
