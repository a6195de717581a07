import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Prisma } from "../../services/core/database.ts";
import { createAssetWithJob, markAssetProcessing, markAssetReady, recordAssetEmbeddings } from "../../services/assets/asset-records.ts";
import { statementsOf } from "../support/pg-statements.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

// The asset writes every ingest makes (the upload's rows; the job's PROCESSING, embedding records, READY) go straight
// to node-postgres as prepared statements (issue #20, encode): through Prisma, even raw, each cost its client and
// query compiler on the event loop, and PostgreSQL parsed and planned each anew.

let t: TestApp;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp();
  ({ projectId } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

async function newAsset(sha256: string) {
  const fields = { modality: "IMAGE" as const, mimeType: "image/jpeg", byteSize: 1234, source: "upload", filename: "a.jpg", metadata: { camera: "x" }, tags: ["a", "b"], media: { width: 4 } };
  return (await createAssetWithJob(t.app.db, projectId, sha256, fields, undefined)).asset;
}

describe("an upload's asset and job rows", () => {
  it("are one prepared statement on node-postgres", async () => {
    for (const sha256 of ["c".repeat(64), "d".repeat(64)]) {
      const sent = await statementsOf(() => newAsset(sha256));
      expect(sent).toHaveLength(1);
      expect(sent[0]!.name).toMatch(/^tessera_/);
    }
  });
});

describe("the ingest job's asset writes", () => {
  it("are one prepared statement each on node-postgres, none through Prisma", async () => {
    const asset = await newAsset("f".repeat(64));
    const vectors = [{ space: "image-text", model: "clip", vector: new Float32Array(8) }];
    for (let round = 0; round < 2; round++) {
      const sent = await statementsOf(async () => {
        expect(await markAssetProcessing(t.app.db, projectId, asset.id)).toBeDefined();
        expect(await recordAssetEmbeddings(t.app.db, asset.id, vectors)).toBe(true);
        expect(await markAssetReady(t.app.db, asset.id, { width: 4, decoded: { image: { width: 4, height: 4 } } })).toEqual({ listened: false });
      });
      expect(sent.filter((statement) => statement.rowMode === "array")).toEqual([]);
      expect(sent).toHaveLength(3);
      for (const statement of sent) expect(statement.name).toMatch(/^tessera_/);
    }
  });

  it("read the asset as Prisma does, and keep what they wrote", async () => {
    const asset = await newAsset("e".repeat(64));
    const processing = await markAssetProcessing(t.app.db, projectId, asset.id);
    const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
    expect(processing).toEqual({ asset: row, embeddingRecords: 0 });
    expect(row.status).toBe("PROCESSING");
    expect(await markAssetProcessing(t.app.db, "another-project", asset.id)).toBeUndefined();

    const vectors = [
      { space: "image-text", model: "clip", vector: new Float32Array(8) },
      { space: "image-text", model: "clip", vector: new Float32Array(8) },
      { space: "text", model: "minilm", vector: new Float32Array(4) },
    ];
    expect(await recordAssetEmbeddings(t.app.db, asset.id, vectors)).toBe(true);
    const embeddings = await t.app.db.assetEmbedding.findMany({ where: { assetId: asset.id }, orderBy: { space: "asc" } });
    expect(embeddings.map(({ space, model, dimensions, vectors }) => ({ space, model, dimensions, vectors }))).toEqual([
      { space: "image-text", model: "clip", dimensions: 8, vectors: 2 },
      { space: "text", model: "minilm", dimensions: 4, vectors: 1 },
    ]);
    expect((await markAssetProcessing(t.app.db, projectId, asset.id))?.embeddingRecords).toBe(2);

    expect(await markAssetReady(t.app.db, asset.id, { width: 4, decoded: { image: { width: 4, height: 4 } } }, Prisma.sql`true`)).toEqual({ listened: true });
    const ready = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
    expect(ready).toMatchObject({ status: "READY", error: null, media: { width: 4, decoded: { image: { width: 4, height: 4 } } } });
    const outbox = await t.app.db.projectEventOutbox.findMany({ where: { subjectId: asset.id } });
    expect(outbox.map((event) => event.type)).toEqual(["asset.ready"]);
    expect(await markAssetReady(t.app.db, asset.id)).toEqual({ listened: false });
    expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).media).toEqual(ready.media);

    // Gone rows: no READY, no embedding records.
    await t.app.db.asset.delete({ where: { id: asset.id } });
    expect(await markAssetReady(t.app.db, asset.id)).toBeUndefined();
    expect(await recordAssetEmbeddings(t.app.db, asset.id, vectors)).toBe(false);
  });
});
