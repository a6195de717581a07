import sharp from "sharp";
import { loadIconSet } from "../../training/emoji-concepts.ts";
import { renderIconPng } from "../../training/icon-renderer.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

/*
 * The whole path with the real worker and the models the runtime serves out
 * of the box (USE-lite sentences, PP-OCR): ingest through GraphQL, the worker
 * decodes, encodes and indexes into the real Weaviate, and `search` finds the
 * asset. An image is found by a text query through the words in it (OCR into
 * the sentence space), and through what it shows (the committed demo
 * image-text model, tessera-emoji-clip, which knows emoji-like drawings).
 */

const INGEST = /* GraphQL */ `
  mutation Ingest($input: IngestInput!) { ingest(input: $input) { asset { id modality } job { id } } }
`;
const SEARCH = /* GraphQL */ `
  query Search($input: SearchInput!) { search(input: $input) { hits { score snippet spaces asset { id modality } } } }
`;

describe("ingest, then search (worker + Weaviate + real models)", () => {
  let t: TestApp;
  let project: { key: string; projectId: string };

  async function ingestAndWait(input: Record<string, unknown>, file?: { bytes: Buffer; name: string; type: string }) {
    let result: any;
    if (file) {
      const form = new FormData();
      form.set("operations", JSON.stringify({ query: INGEST, variables: { input: { ...input, file: null } } }));
      form.set("map", JSON.stringify({ 0: ["variables.input.file"] }));
      form.set("0", new Blob([new Uint8Array(file.bytes)], { type: file.type }), file.name);
      const response = await fetch(t.url, { method: "POST", body: form, headers: { authorization: `Bearer ${project.key}`, "graphql-require-preflight": "1" } });
      result = await response.json();
    } else {
      result = await t.graphql(INGEST, { input }, project.key);
    }
    expect(result.errors).toBeUndefined();
    const { asset, job } = result.data.ingest;
    const finished = await eventually(async () => {
      const row = await t.app.db.job.findUnique({ where: { id: job.id } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 90_000);
    expect(finished.error).toBeNull();
    expect(finished.status).toBe("SUCCEEDED");
    return asset as { id: string; modality: string };
  }

  beforeAll(async () => {
    t = await startTestApp({ worker: true, env: { WEAVIATE_URL: TEST_WEAVIATE_URL, WEAVIATE_GRPC_PORT: String(TEST_WEAVIATE_GRPC_PORT) } });
    project = await t.createProject();
  });

  afterAll(async () => {
    await t.app.vectorStore.deleteProject(project.projectId);
    await t.close();
  });

  it("a text query finds an ingested text, and ingesting it again adds no vectors", async () => {
    const text = "The lighthouse keeper climbed the spiral stairs to light the lamp before the storm.";
    const asset = await ingestAndWait({ text, tags: ["stories"] });
    const vectors = await t.app.vectorStore.count(project.projectId, { assetId: asset.id });
    expect(vectors).toBeGreaterThan(0);
    const result = await t.graphql(SEARCH, { input: { text: "a tower by the sea with a big light" } }, project.key);
    expect(result.errors).toBeUndefined();
    expect(result.data.search.hits[0]).toMatchObject({ asset: { id: asset.id, modality: "TEXT" }, snippet: text });

    const again = await t.graphql(INGEST, { input: { text, tags: ["stories"] } }, project.key);
    expect(again.data.ingest.asset.id).toBe(asset.id);
    expect(await t.app.vectorStore.count(project.projectId, { assetId: asset.id })).toBe(vectors);
  });

  it("a text query finds an image by the words in it, with the OCR line as snippet; deleteAsset takes it out of search", async () => {
    // A random corner pixel makes the bytes unique: an asset elsewhere in the test database with the same bytes would keep the blob.
    const corner = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0");
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="160"><rect width="100%" height="100%" fill="white"/><rect width="1" height="1" fill="#${corner}"/><text x="20" y="95" font-family="DejaVu Sans, sans-serif" font-size="48" fill="black">PANCAKE RECIPE</text></svg>`;
    const png = await sharp(Buffer.from(svg)).png().toBuffer();
    const image = await ingestAndWait({ tags: ["scans"] }, { bytes: png, name: "card.png", type: "image/png" });
    expect(image.modality).toBe("IMAGE");

    const result = await t.graphql(SEARCH, { input: { text: "pancake recipe", modalities: ["IMAGE"] } }, project.key);
    expect(result.errors).toBeUndefined();
    expect(result.data.search.hits[0]).toMatchObject({ asset: { id: image.id, modality: "IMAGE" }, snippet: "PANCAKE RECIPE" });

    const deleted = await t.graphql(`mutation($id: ID!) { deleteAsset(id: $id) { vectorsDeleted blobDeleted } }`, { id: image.id }, project.key);
    expect(deleted.errors).toBeUndefined();
    expect(deleted.data.deleteAsset.vectorsDeleted).toBeGreaterThan(0);
    expect(deleted.data.deleteAsset.blobDeleted).toBe(true);
    const after = await t.graphql(SEARCH, { input: { text: "pancake recipe", modalities: ["IMAGE"] } }, project.key);
    expect(after.data.search.hits.map((hit: any) => hit.asset.id)).not.toContain(image.id);
    expect(await t.app.vectorStore.count(project.projectId, { assetId: image.id })).toBe(0);
  });

  it("a text query finds the picture that shows it, through the image-text space", async () => {
    expect(t.app.models.spacesFor("TEXT")).toContain("image-text");
    const noto = loadIconSet("noto");
    const pictures: Record<string, string> = {};
    for (const name of ["cat-face", "red-apple", "soccer-ball", "automobile"]) {
      const png = await renderIconPng(noto, name, 128);
      pictures[name] = (await ingestAndWait({ tags: ["emoji"] }, { bytes: png, name: `${name}.png`, type: "image/png" })).id;
    }
    for (const [query, expected] of [["cat", "cat-face"], ["car", "automobile"]] as const) {
      const result = await t.graphql(SEARCH, { input: { text: query, modalities: ["IMAGE"], filter: { tags: ["emoji"] } } }, project.key);
      expect(result.errors).toBeUndefined();
      expect(result.data.search.hits[0]).toMatchObject({ asset: { id: pictures[expected], modality: "IMAGE" }, spaces: ["image-text"] });
      expect(result.data.search.hits).toHaveLength(4);
    }
  });
});
