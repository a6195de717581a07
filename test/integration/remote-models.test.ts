import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createAppContext, type AppContext } from "../../services/app/app-context.ts";
import { loadConfig } from "../../services/core/config.ts";
import { createLogger } from "../../services/core/logger.ts";
import { RemoteModelClient } from "../../services/models/remote-model-calls.ts";
import { startWorkerPool, type WorkerPool } from "../../services/worker/worker-pool.ts";
import { solidImage } from "../support/fixture-models/model-fixtures.ts";
import { uploadFile } from "../support/graphql-upload.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

/*
 * A GPU-style worker that serves only CLIP (and takes nothing but calls of
 * its models), and a CPU-style gateway + worker that has no CLIP weights and
 * sends CLIP calls to it (REMOTE_MODELS=clip) over real Redis. One ingest job
 * on the CPU side still gets every encoder: CLIP from the other worker, OCR
 * and the sentence model from its own.
 */
const prefix = `test-remote-${randomUUID().slice(0, 8)}`;
let clipDir: string;
let emptyDir: string;
let gpu: { app: AppContext; pool: WorkerPool };
let cpu: TestApp;
let key: string;

beforeAll(async () => {
  clipDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-remote-clip-"));
  emptyDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-remote-none-"));
  await writeTinyClipExport(path.join(clipDir, "clip"));
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    DATA_DIR: path.join(clipDir, "data"),
    MODELS_DIR: clipDir,
    QUEUE_PREFIX: prefix,
  });
  const app = await createAppContext(config, createLogger("silent"));
  app.models.configure({ models: ["clip"] }); // npm run worker -- --models clip --queues models
  gpu = { app, pool: startWorkerPool(app, { queues: [], modelCalls: true }) };
  cpu = await startTestApp({
    worker: true,
    env: { MODELS_DIR: emptyDir, REMOTE_MODELS: "clip,whisper", QUEUE_PREFIX: prefix, MODEL_CALL_TIMEOUT_MS: "1500" },
  });
  ({ key } = await cpu.createProject());
});

afterAll(async () => {
  await cpu?.close();
  await gpu?.pool.close();
  await gpu?.app.close();
  await fs.rm(clipDir, { recursive: true, force: true });
  await fs.rm(emptyDir, { recursive: true, force: true });
});

describe("models served by another worker", () => {
  it("lists a remote model as such, and the serving worker takes only its own models' calls", async () => {
    const { data } = await cpu.graphql(`{ models { name task device space } }`, {}, key);
    expect(data.models).toContainEqual({ name: "clip", task: "embed", device: "remote", space: "image-text" });
    expect(data.models).toContainEqual({ name: "pp-ocr", task: "ocr", device: "cpu", space: null });
    expect(gpu.app.models.localModels().map((model) => model.name)).toEqual(["clip"]);
  });

  it("one ingest job gets CLIP vectors from the other worker and OCR and sentence vectors from its own", async () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="520" height="120"><rect width="100%" height="100%" fill="white"/><text x="24" y="72" font-family="DejaVu Sans" font-size="40" fill="black">Invoice 4417</text></svg>`;
    const response = await uploadFile(cpu.url, key, { bytes: await sharp(Buffer.from(svg)).png().toBuffer(), filename: "invoice.png" });
    expect(response.errors).toBeUndefined();
    const { asset, job } = response.data.ingest as { asset: { id: string }; job: { id: string } };
    const finished = await eventually(async () => {
      const row = await cpu.app.db.job.findUnique({ where: { id: job.id } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 60_000);
    expect(finished).toMatchObject({ status: "SUCCEEDED" });
    const embeddings = await cpu.app.db.assetEmbedding.findMany({ where: { assetId: asset.id }, orderBy: { space: "asc" } });
    expect(embeddings.map(({ space, model, dimensions, vectors }) => ({ space, model, dimensions, vectors }))).toEqual([
      // The picture and its OCR text through CLIP on the other worker; the OCR text through the local sentence model.
      { space: "image-text", model: "clip", dimensions: 16, vectors: 2 },
      { space: "sentence", model: "use-lite-sentence", dimensions: 512, vectors: 1 },
    ]);
    // CLIP ran there, batched by its runtime, and never here.
    expect(gpu.app.models.batchSizes("clip", "embedImages").count).toBeGreaterThan(0);
    expect(gpu.app.models.batchSizes("clip", "embedText").count).toBeGreaterThan(0);
    expect(cpu.app.models.batchSizes("clip", "embedImages").count).toBe(0);
  });

  it("sends images at the model's input size, asked of the serving worker once, with the same vectors as there", async () => {
    const received: Array<{ width: number; height: number; bytes: number }> = [];
    let sizeQuestions = 0;
    const serve = gpu.app.models.callModel.bind(gpu.app.models);
    gpu.app.models.callModel = async (model, operation, input) => {
      if (operation === "imageInput") sizeQuestions++;
      if (operation === "embedImages") {
        const image = input as { rgb: Buffer; width: number; height: number };
        received.push({ width: image.width, height: image.height, bytes: image.rgb.length });
      }
      return serve(model, operation, input);
    };
    try {
      const photo = solidImage(640, 360, [30, 140, 200]);
      const [viaQueue] = await cpu.app.models.embedImages([photo, solidImage(300, 500, [200, 40, 40])]);
      await cpu.app.models.embedImages([solidImage(90, 60, [10, 10, 10])]);
      // The fixture export's vision tower takes 32 x 32: 3 KB on the queue instead of 691 KB of RGB.
      expect(received).toEqual(Array.from({ length: 3 }, () => ({ width: 32, height: 32, bytes: 32 * 32 * 3 })));
      expect(sizeQuestions).toBeLessThanOrEqual(1); // asked by an earlier test of this file, or once here
      const [there] = await gpu.app.models.embedImages([photo]);
      expect(Array.from(viaQueue!.vectors[0]!)).toEqual(Array.from(there!.vectors[0]!));
    } finally {
      gpu.app.models.callModel = serve;
    }
  });

  it("takes more calls at once than Node's default of ten listeners, without a warning", async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on("warning", onWarning);
    try {
      const images = Array.from({ length: 24 }, (_, index) => solidImage(40, 40, [index * 10, 100, 200 - index * 5]));
      const [space] = await cpu.app.models.embedImages(images);
      expect(space!.vectors).toHaveLength(24);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      expect(warnings.filter((warning) => warning.startsWith("MaxListenersExceededWarning"))).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("a remote model's error comes back typed, naming the model", async () => {
    const broken = { rgb: Buffer.alloc(5), width: 10, height: 10 };
    // Sent as it is (the caller's own check would stop it first, below), it fails on the serving worker.
    const client = new RemoteModelClient(cpu.app.redis, prefix, 10_000);
    try {
      await expect(client.call("clip", "embedImages", broken)).rejects.toMatchObject({
        code: "MODEL_ERROR",
        message: expect.stringContaining("the image holds 5 bytes, not 10 x 10 x 3"),
        details: { model: "clip" },
      });
    } finally {
      await client.close();
    }
    await expect(cpu.app.models.embedImages([broken])).rejects.toMatchObject({ code: "MODEL_ERROR", details: { model: "clip" } });
  });

  it("a closed client leaves no connection open (a worker process could not exit otherwise)", async () => {
    const base = cpu.app.redis.duplicate();
    const duplicate = vi.spyOn(base, "duplicate");
    const client = new RemoteModelClient(base, prefix, 10_000);
    try {
      await expect(client.call("clip", "imageInput", null)).resolves.toEqual({ width: 32, height: 32, resize: "cover-crop" });
      await client.close();
      const opened = duplicate.mock.results.map((result) => result.value as { status: string });
      expect(opened.length).toBeGreaterThan(0);
      // ioredis marks a disconnected connection "end" once its socket has closed.
      await eventually(async () => opened.every((connection) => connection.status === "end"), 5000);
    } finally {
      base.disconnect();
    }
  });

  it("a call nobody serves fails with a typed error once the timeout passes, instead of hanging", async () => {
    await expect(cpu.app.models.transcribe(new Float32Array(16_000))).rejects.toMatchObject({
      code: "MODEL_ERROR",
      message: expect.stringContaining("no worker answered a call of model whisper within 1500 ms"),
      details: { model: "whisper" },
    });
  });
});
