import { execFileSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uploadFile } from "../support/graphql-upload.ts";
import { makeMp4 } from "../support/media-fixtures.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";
import { buildTinyWhisper } from "../support/fixture-models/tiny-whisper/build-tiny-whisper.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * The ingest job end to end on a real gateway + worker (PostgreSQL, Redis,
 * the embedded vector store): decode, the encoders (tiny CLIP export plus
 * the real offline models), index. Checks what each asset got.
 */
let t: TestApp;
let key: string;
let projectId: string;
let modelsDir: string;

const JOB = `query ($id: ID!) { job(id: $id) { status error { code message } } }`;

async function finished(jobId: string) {
  return eventually(async () => {
    const { data } = await t.graphql(JOB, { id: jobId }, key);
    return ["SUCCEEDED", "FAILED"].includes(data?.job?.status) ? data.job : null;
  }, 60_000);
}

async function upload(bytes: Buffer, filename: string) {
  const response = await uploadFile(t.url, key, { bytes, filename });
  expect(response.errors).toBeUndefined();
  return response.data.ingest as { asset: { id: string }; job: { id: string } };
}

async function embeddingsOf(assetId: string) {
  const rows = await t.app.db.assetEmbedding.findMany({ where: { assetId }, orderBy: { space: "asc" } });
  return rows.map(({ space, model, dimensions, vectors }) => ({ space, model, dimensions, vectors }));
}

beforeAll(async () => {
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-encoders-"));
  await writeTinyClipExport(path.join(modelsDir, "clip"));
  await buildTinyWhisper(modelsDir, {}, "whisper");
  t = await startTestApp({ worker: true, env: { MODELS_DIR: modelsDir } });
  ({ key, projectId } = await t.createProject());
});

afterAll(async () => {
  await t?.close();
  await fs.rm(modelsDir, { recursive: true, force: true });
});

describe("ingest runs the encoders", () => {
  it("lists the served models over GraphQL, with a key only", async () => {
    const query = `{ models { name modality task dimensions device space } }`;
    const { data } = await t.graphql(query, {}, key);
    expect(data.models).toContainEqual({ name: "clip", modality: "IMAGE", task: "embed", dimensions: 16, device: "cpu", space: "image-text" });
    expect(data.models).toContainEqual({ name: "pp-ocr", modality: "IMAGE", task: "ocr", dimensions: null, device: "cpu", space: null });
    const anonymous = await t.graphql(query);
    expect(anonymous.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });

  it("text: every chunk into the image-text and sentence spaces", async () => {
    const { data } = await t.graphql(
      `mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`,
      { text: "A small orange cat sleeps on a warm windowsill in the afternoon sun." },
      key,
    );
    expect(await finished(data.ingest.job.id)).toMatchObject({ status: "SUCCEEDED" });
    expect(await embeddingsOf(data.ingest.asset.id)).toEqual([
      { space: "image-text", model: "clip", dimensions: 16, vectors: 1 },
      { space: "sentence", model: "use-lite-sentence", dimensions: 512, vectors: 1 },
    ]);
  });

  it("image: the image into image-text, and the words OCR reads into the text spaces", async () => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="520" height="120"><rect width="100%" height="100%" fill="white"/><text x="24" y="72" font-family="DejaVu Sans" font-size="40" fill="black">Invoice 4417</text></svg>`;
    const png = await sharp(Buffer.from(svg)).png().toBuffer();
    const { asset, job } = await upload(png, "invoice.png");
    expect(await finished(job.id)).toMatchObject({ status: "SUCCEEDED" });
    expect(await embeddingsOf(asset.id)).toEqual([
      // image-text: the picture (chunk 0) and its OCR text (chunk 1); sentence: the OCR text
      { space: "image-text", model: "clip", dimensions: 16, vectors: 2 },
      { space: "sentence", model: "use-lite-sentence", dimensions: 512, vectors: 1 },
    ]);
    const stored = await t.app.vectorStore.vectorsOf(projectId, asset.id);
    const sentence = stored.find((vector) => vector.space === "sentence")!;
    expect(sentence.text.replace(/\s+/g, "")).toContain("Invoice4417");
    // Nothing else stands for the image in the sentence space: its words are chunk 0 there.
    expect(sentence.chunk).toBe(0);
    expect(stored.filter((vector) => vector.space === "image-text").map((vector) => vector.chunk).sort()).toEqual([0, 1]);
  });

  it("audio: the clip into the audio space; where VAD hears speech, its transcript into the text spaces", async () => {
    const file = path.join(modelsDir, "speech.wav");
    execFileSync("espeak-ng", ["-w", file, "Meet me at the station at noon."]);
    const { asset, job } = await upload(await fs.readFile(file), "speech.wav");
    expect(await finished(job.id)).toMatchObject({ status: "SUCCEEDED" });
    expect(await embeddingsOf(asset.id)).toEqual([
      { space: "audio", model: "openwakeword-audio", dimensions: 96, vectors: 1 },
      { space: "image-text", model: "clip", dimensions: 16, vectors: 1 },
      { space: "sentence", model: "use-lite-sentence", dimensions: 512, vectors: 1 },
    ]);
    // The tiny Whisper export writes "tuvwxyz" for sound.
    const sentence = (await t.app.vectorStore.vectorsOf(projectId, asset.id)).find((vector) => vector.space === "sentence")!;
    expect(sentence.text).toBe("tuvwxyz");
  });

  it("an audio query: the words the served Whisper hears find a text asset, and explain.heard says so", async () => {
    // The tiny Whisper export hears "tuvwxyz" in any sound: a text asset with that word is what the words find.
    const { data } = await t.graphql(`mutation { ingest(input: { text: "tuvwxyz" }) { asset { id } job { id } } }`, {}, key);
    expect(await finished(data.ingest.job.id)).toMatchObject({ status: "SUCCEEDED" });
    const file = path.join(modelsDir, "query.wav");
    execFileSync("espeak-ng", ["-w", file, "Where is the written note?"]);
    const SEARCH = `query ($file: Upload!) { search(input: { file: $file, limit: 20 }) {
      hits { asset { id } explain { fused heard { text score } } } } }`;
    const response = await uploadFile(t.url, key, { bytes: await fs.readFile(file), filename: "query.wav" }, { query: SEARCH });
    expect(response.errors).toBeUndefined();
    const hits = (response.data.search as { hits: { asset: { id: string }; explain: { fused: number; heard: { text: string; score: number } | null } }[] }).hits;
    const byWords = hits.find((hit) => hit.asset.id === data.ingest.asset.id);
    expect(byWords?.explain.heard).toEqual({ text: "tuvwxyz", score: expect.any(Number) });
    expect(byWords!.explain.heard!.score).toBeGreaterThan(0);
    // A text query hears nothing.
    const byText = await t.graphql(`{ search(input: { text: "tuvwxyz" }) { hits { asset { id } explain { heard { text } } } } }`, {}, key);
    expect(byText.data.search.hits.length).toBeGreaterThan(0);
    for (const hit of byText.data.search.hits) expect(hit.explain.heard).toBeNull();
  });

  it("audio without speech: no transcript is attempted", async () => {
    const file = path.join(modelsDir, "tone.wav");
    execFileSync("ffmpeg", ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:duration=2", file]);
    const { asset, job } = await upload(await fs.readFile(file), "tone.wav");
    expect(await finished(job.id)).toMatchObject({ status: "SUCCEEDED" });
    expect(await embeddingsOf(asset.id)).toEqual([{ space: "audio", model: "openwakeword-audio", dimensions: 96, vectors: 1 }]);
  });

  it("video: each sampled frame and their pooled vector into image-text, the sound track into audio", async () => {
    const { asset, job } = await upload(await makeMp4(3), "clip.mp4");
    expect(await finished(job.id)).toMatchObject({ status: "SUCCEEDED" });
    const stored = (await t.app.vectorStore.vectorsOf(projectId, asset.id)).filter((vector) => vector.space === "image-text");
    const frames = stored.length - 1;
    expect(frames).toBeGreaterThan(0);
    expect(stored.map((vector) => vector.chunk).sort((a, b) => a - b)).toEqual(Array.from({ length: frames + 1 }, (_, index) => index));
    const rows = await embeddingsOf(asset.id);
    expect(rows).toEqual([
      { space: "audio", model: "openwakeword-audio", dimensions: 96, vectors: 1 },
      { space: "image-text", model: "clip", dimensions: 16, vectors: frames + 1 },
    ]);
    // chunk 0 is the late fusion (normalised mean) of the frames.
    const pooled = stored.find((vector) => vector.chunk === 0)!.vector;
    const mean = new Float32Array(16);
    for (const frame of stored.filter((vector) => vector.chunk > 0)) frame.vector.forEach((value, index) => (mean[index]! += value));
    const norm = Math.hypot(...mean);
    mean.forEach((value, index) => expect(pooled[index]!).toBeCloseTo(value / norm, 4));
    expect(Math.hypot(...pooled)).toBeCloseTo(1, 4);
  });
});

describe("a model that fails", () => {
  let broken: TestApp;
  let brokenKey: string;
  let brokenDir: string;

  beforeAll(async () => {
    brokenDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-broken-"));
    await writeTinyClipExport(path.join(brokenDir, "clip"));
    await fs.writeFile(path.join(brokenDir, "clip", "onnx", "vision_model.onnx"), "not a graph");
    broken = await startTestApp({ worker: true, env: { MODELS_DIR: brokenDir } });
    ({ key: brokenKey } = await broken.createProject());
  });

  afterAll(async () => {
    await broken?.close();
    await fs.rm(brokenDir, { recursive: true, force: true });
  });

  it("fails the job with MODEL_ERROR naming the model, stores no vectors, and the worker goes on", async () => {
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#3366cc" } }).png().toBuffer();
    const response = await uploadFile(broken.url, brokenKey, { bytes: png, filename: "blue.png" });
    const { asset, job } = response.data.ingest;
    const failed = await eventually(async () => {
      const { data } = await broken.graphql(JOB, { id: job.id }, brokenKey);
      return data?.job?.status === "FAILED" ? data.job : null;
    }, 60_000);
    expect(failed.error.code).toBe("MODEL_ERROR");
    expect(failed.error.message).toMatch(/^model clip: /);
    expect(await broken.app.db.assetEmbedding.count({ where: { assetId: asset.id } })).toBe(0);
    const failedAsset = (await broken.app.db.asset.findUnique({ where: { id: asset.id } }))!;
    expect(failedAsset.status).toBe("FAILED");
    // What decoding found is kept on the failed asset too.
    expect(failedAsset.media).toMatchObject({ decoded: { image: { width: 40, height: 30 } } });

    // Same worker, next job: the text tower is fine.
    const { data } = await broken.graphql(`mutation { ingest(input: { text: "still alive" }) { job { id } } }`, {}, brokenKey);
    const next = await eventually(async () => {
      const { data: polled } = await broken.graphql(JOB, { id: data.ingest.job.id }, brokenKey);
      return polled?.job?.status === "SUCCEEDED" ? polled.job : null;
    }, 60_000);
    expect(next.status).toBe("SUCCEEDED");
  });

  it("the same bytes sent again after a failure retry the failed asset in place: same asset, a new job; a READY asset is returned as it is", async () => {
    const png = await sharp({ create: { width: 36, height: 24, channels: 3, background: "#cc6633" } }).png().toBuffer();
    const first = (await uploadFile(broken.url, brokenKey, { bytes: png, filename: "orange.png" })).data.ingest;
    await eventually(async () => ((await broken.graphql(JOB, { id: first.job.id }, brokenKey)).data?.job?.status === "FAILED" ? true : null), 60_000);
    const again = await uploadFile(broken.url, brokenKey, { bytes: png, filename: "orange-again.png" });
    expect(again.errors).toBeUndefined();
    expect(again.data.ingest.asset.id).toBe(first.asset.id);
    expect(again.data.ingest.job.id).not.toBe(first.job.id);
    const { sha256, projectId: brokenProject } = await broken.app.db.asset.findUniqueOrThrow({ where: { id: first.asset.id } });
    expect(await broken.app.db.asset.count({ where: { sha256, projectId: brokenProject } })).toBe(1);

    const text = `ready once ${Date.now()}`;
    const ingestText = () => broken.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`, { text }, brokenKey);
    const ready = (await ingestText()).data.ingest;
    await eventually(async () => ((await broken.graphql(JOB, { id: ready.job.id }, brokenKey)).data?.job?.status === "SUCCEEDED" ? true : null), 60_000);
    expect((await ingestText()).data.ingest).toEqual(ready);
  });
});
