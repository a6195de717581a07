import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IngestState } from "../../services/worker/ingest/ingest-stage.ts";
import { ingestStages } from "../../services/worker/ingest/ingest-stages.ts";
import { uploadFile } from "../support/graphql-upload.ts";
import { makeJpeg, makeMp4, makePdf, makePng, makeWav, pngWithCorruptPixels } from "../support/media-fixtures.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// What the decode stage hands the encoders, caught right after it runs.
const decoded = new Map<string, IngestState>();
ingestStages.splice(ingestStages.findIndex((stage) => stage.name === "decode") + 1, 0, {
  name: "test-capture-decoded",
  async run(asset, state) {
    decoded.set(asset.id, state);
  },
});

let t: TestApp;
let key: string;
let mediaServer: Server;
let mediaBase: string;
let png: Buffer;
let remotePng: Buffer;

beforeAll(async () => {
  png = await makePng(1500, 1000);
  remotePng = await makePng(30, 20);
  // A stand-in for a remote web server; the SSRF guard lets it through only because the allow-list names it.
  mediaServer = createServer((request, response) => {
    if (request.url === "/images/photo.png") return response.writeHead(200, { "content-type": "image/png" }).end(remotePng);
    if (request.url === "/moved") return response.writeHead(302, { location: "/images/photo.png" }).end();
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => mediaServer.listen(0, "127.0.0.1", resolve));
  mediaBase = `http://127.0.0.1:${(mediaServer.address() as AddressInfo).port}`;
  // No model manifests: these tests are about decoding, and must not hang on which encoder weights a checkout has.
  t = await startTestApp({
    worker: true,
    noModels: true,
    env: {
      VIDEO_FRAME_RATE: "2",
      VIDEO_MAX_FRAMES: "3",
      TEXT_CHUNK_CHARS: "120",
      TEXT_CHUNK_OVERLAP: "20",
      URL_ALLOW_HOSTS: new URL(mediaBase).host,
    },
  });
  ({ key } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
  mediaServer?.close();
});

async function finished(pending: Promise<{ data?: any; errors?: unknown }>) {
  const ingested = await pending;
  expect(ingested.errors).toBeUndefined();
  const { asset, job } = ingested.data.ingest;
  const done = await eventually(async () => {
    const response = await t.graphql(`query ($id: ID!) { job(id: $id) { status progress error { code message } } }`, { id: job.id }, key);
    const status = response.data?.job?.status;
    return status === "SUCCEEDED" || status === "FAILED" ? response.data.job : null;
  }, 60_000);
  expect(done).toMatchObject({ status: "SUCCEEDED", progress: 1 });
  const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
  expect(row.status).toBe("READY");
  return { asset, row, state: decoded.get(asset.id)! };
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("ingesting an image", () => {
  it("stores an uploaded PNG by content, records its size, and decodes it to RGB capped at 1024 px", async () => {
    const { asset, row, state } = await finished(uploadFile(t.url, key, { bytes: png, filename: "photo.png", mimeType: "image/png" }));
    expect(asset).toMatchObject({ modality: "IMAGE", mimeType: "image/png", byteSize: png.length, sha256: sha256(png) });
    expect(row).toMatchObject({ source: "upload", filename: "photo.png" });
    expect(row.media).toMatchObject({ width: 1500, height: 1000, codec: "png", decoded: { image: { width: 1024, height: 683 } } });
    expect((await fs.readFile(await t.app.blobs.localPath(asset.sha256))).equals(png)).toBe(true);
    expect(state.image).toMatchObject({ width: 1024, height: 683 });
    expect(state.image!.rgb.length).toBe(1024 * 683 * 3);
  });

  it("judges the type by the bytes: a JPEG sent as photo.png with image/png is a JPEG", async () => {
    const jpeg = await makeJpeg(40, 30);
    const { asset, state } = await finished(uploadFile(t.url, key, { bytes: jpeg, filename: "photo.png", mimeType: "image/png" }));
    expect(asset.mimeType).toBe("image/jpeg");
    expect(state.image).toMatchObject({ width: 40, height: 30 }); // small images are not enlarged
  });
});

describe("an image whose container is whole but whose pixels do not decode", () => {
  it("is accepted at upload (no pixel is decoded there), and its ingest job fails the asset with CORRUPT_MEDIA and the reason", async () => {
    const bytes = await pngWithCorruptPixels();
    const ingested = await uploadFile(t.url, key, { bytes, filename: "broken.png", mimeType: "image/png" });
    expect(ingested.errors).toBeUndefined();
    const { asset, job } = ingested.data.ingest;
    expect(asset).toMatchObject({ modality: "IMAGE", mimeType: "image/png", sha256: sha256(bytes) });
    const failed = await eventually(async () => {
      const response = await t.graphql(
        `query ($job: ID!, $asset: ID!) { job(id: $job) { status error { code message } } asset(id: $asset) { status } }`,
        { job: job.id, asset: asset.id },
        key,
      );
      return response.data?.job?.status === "FAILED" ? response.data : null;
    }, 30_000);
    expect(failed.job.error).toEqual({ code: "CORRUPT_MEDIA", message: expect.stringMatching(/^the image does not decode: .*png/) });
    expect(failed.asset.status).toBe("FAILED");
    const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
    expect(row.media).toMatchObject({ width: 64, height: 48, codec: "png" }); // what the upload's header read found
    expect(decoded.has(asset.id)).toBe(false);
  });
});

describe("ingesting audio", () => {
  it("decodes a WAV to 16 kHz mono float PCM that still holds the 440 Hz tone", async () => {
    const wav = await makeWav(1, 22050);
    const { asset, row, state } = await finished(uploadFile(t.url, key, { bytes: wav, filename: "tone.wav" }));
    expect(asset).toMatchObject({ modality: "AUDIO", mimeType: "audio/wav" });
    expect(row.media).toMatchObject({ sampleRate: 22050, channels: 1, codec: "pcm_s16le", durationSec: 1 });
    const audio = state.audio!;
    expect(audio.sampleRate).toBe(16000);
    expect(Math.abs(audio.samples.length - 16000)).toBeLessThan(200);
    let crossings = 0;
    for (let i = 1; i < audio.samples.length; i++) if (audio.samples[i - 1]! < 0 !== audio.samples[i]! < 0) crossings++;
    expect(crossings).toBeGreaterThan(860); // 440 Hz: two zero crossings a cycle
    expect(crossings).toBeLessThan(900);
    expect(Math.max(...audio.samples)).toBeGreaterThan(0.05);
    expect(Math.max(...audio.samples)).toBeLessThanOrEqual(1);
  });
});

describe("ingesting video", () => {
  it("samples frames at the configured rate, no more than the maximum, and decodes the sound track", async () => {
    const mp4 = await makeMp4(2, "320x240", 25);
    const { asset, row, state } = await finished(uploadFile(t.url, key, { bytes: mp4, filename: "clip.mp4", mimeType: "video/mp4" }));
    expect(asset).toMatchObject({ modality: "VIDEO", mimeType: "video/mp4" });
    expect(row.media).toMatchObject({ width: 320, height: 240, frameRate: 25, codec: "h264", audioCodec: "aac", sampleRate: 44100 });
    expect((row.media as any).durationSec).toBeCloseTo(2, 0);
    // 2 frames/s over 2 s would be 4; the maximum of 3 spreads them over the whole clip instead.
    expect(state.frames!.length).toBe(3);
    for (const frame of state.frames!) {
      expect(frame).toMatchObject({ width: 320, height: 240 });
      expect(frame.rgb.length).toBe(320 * 240 * 3);
    }
    expect(state.frames!.map((frame) => frame.timeSec)).toEqual([0, 2 / 3, 4 / 3].map((time) => expect.closeTo(time, 3)));
    expect(state.frames![0]!.rgb.equals(state.frames![2]!.rgb)).toBe(false); // testsrc moves
    expect(Math.abs(state.audio!.samples.length - 32000)).toBeLessThan(1000);
  });
});

describe("ingesting text", () => {
  it("splits text into overlapping chunks whose offsets point back into the text", async () => {
    const text = `# Notes\n\n${Array.from({ length: 30 }, (_, i) => `Sentence number ${i} talks about tessera tiles.`).join(" ")}`;
    const { asset, state } = await finished(
      t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id modality mimeType byteSize } job { id } } }`, { text }, key),
    );
    expect(asset).toMatchObject({ modality: "TEXT", mimeType: "text/markdown", byteSize: Buffer.byteLength(text) });
    const chunks = state.text!.chunks;
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) {
      expect(chunk.kind).toBe("chunk");
      expect(chunk.text).toBe(text.slice(chunk.start, chunk.end));
      expect(chunk.text.length).toBeLessThanOrEqual(120);
    }
    expect(chunks[0]!.start).toBe(0);
    expect(chunks.at(-1)!.end).toBe(text.length);
    for (let i = 1; i < chunks.length; i++) expect(chunks[i]!.start).toBeLessThan(chunks[i - 1]!.end); // they overlap
  });

  it("takes an uploaded UTF-8 file as text", async () => {
    const bytes = Buffer.from("Ünïcödé plain text, nothing more.\n");
    const { asset, state } = await finished(uploadFile(t.url, key, { bytes, filename: "notes.txt", mimeType: "text/plain" }));
    expect(asset).toMatchObject({ modality: "TEXT", mimeType: "text/plain" });
    expect(state.text!.content).toBe(bytes.toString("utf8"));
  });
});

describe("ingesting a PDF", () => {
  it("keeps the PDF and chunks its text layer, page by page", async () => {
    const pdf = makePdf([["Tessera ingests PDF files."], ["The second page talks about mosaic tiles."]]);
    const { asset, row, state } = await finished(uploadFile(t.url, key, { bytes: pdf, filename: "paper.pdf", mimeType: "application/pdf" }));
    expect(asset).toMatchObject({ modality: "TEXT", mimeType: "application/pdf", byteSize: pdf.length });
    expect(row.media).toMatchObject({ pages: 2 });
    expect(state.text!.content).toContain("Tessera ingests PDF files.");
    expect(state.text!.content).toContain("mosaic tiles");
    for (const chunk of state.text!.chunks) expect(chunk.text).toBe(state.text!.content.slice(chunk.start, chunk.end));
  });
});

describe("ingesting from a URL", () => {
  it("fetches an allow-listed server, follows its redirect, and records where the bytes came from", async () => {
    const { asset, row } = await finished(
      t.graphql(`mutation ($url: String!) { ingest(input: { url: $url }) { asset { id modality mimeType sha256 } job { id } } }`, { url: `${mediaBase}/moved` }, key),
    );
    expect(asset).toMatchObject({ modality: "IMAGE", mimeType: "image/png", sha256: sha256(remotePng) });
    expect(row).toMatchObject({ source: "url", sourceUrl: `${mediaBase}/images/photo.png`, filename: "photo.png" });
  });
});

describe("what an ingest answers", () => {
  it("is the asset and job as stored: every field the rows hold, timestamps to the millisecond", async () => {
    const { key: ownKey } = await t.createProject();
    const fields = "id modality sha256 mimeType byteSize source sourceUrl filename metadata tags media createdAt";
    // The worker held back: a small image's ingest can finish (and write the asset's decoded media) before the rows are read.
    const ingestQueue = t.app.queues.queue("ingest");
    await ingestQueue.pause();
    try {
      const { data, errors } = await uploadFile(
        t.url,
        ownKey,
        { bytes: await makePng(12, 9), filename: "näme with spaces.png" },
        {
          query: `mutation ($file: Upload!, $key: String) {
            ingest(input: { file: $file, idempotencyKey: $key, metadata: { camera: { model: "X", iso: 200 }, note: null }, tags: ["b", "a"] }) {
              asset { ${fields} } job { id kind status progress attempts output error { code } finishedAt createdAt }
            }
          }`,
          variables: { key: "answer-1" },
        },
      );
      expect(errors).toBeUndefined();
      const { asset, job } = data.ingest;
      const assetRow = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
      const jobRow = await t.app.db.job.findUniqueOrThrow({ where: { id: job.id } });
      expect(asset).toEqual({
        id: assetRow.id,
        modality: assetRow.modality,
        sha256: assetRow.sha256,
        mimeType: assetRow.mimeType,
        byteSize: assetRow.byteSize,
        source: assetRow.source,
        sourceUrl: assetRow.sourceUrl,
        filename: assetRow.filename,
        metadata: assetRow.metadata,
        tags: assetRow.tags,
        media: assetRow.media,
        createdAt: assetRow.createdAt.toISOString(),
      });
      expect(assetRow).toMatchObject({ filename: "näme with spaces.png", tags: ["b", "a"], metadata: { camera: { model: "X", iso: 200 }, note: null } });
      expect(job).toEqual({ id: jobRow.id, kind: "INGEST", status: "QUEUED", progress: 0, attempts: 0, output: null, error: null, finishedAt: null, createdAt: jobRow.createdAt.toISOString() });
      expect(jobRow).toMatchObject({ assetId: asset.id, input: { assetId: asset.id }, idempotencyKey: "answer-1", projectId: assetRow.projectId });
      // Written as UTC: the instant is now, not hours away in the database session's zone.
      expect(Math.abs(assetRow.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    } finally {
      await ingestQueue.resume();
    }
  });
});

describe("idempotency", () => {
  it("returns the first result for a retried upload with the same idempotency key; other bytes under it are IDEMPOTENCY_CONFLICT, keeping nothing", async () => {
    const { key: ownKey, projectId } = await t.createProject();
    const firstBytes = await makePng(10, 10);
    const first = await uploadFile(t.url, ownKey, { bytes: firstBytes, filename: "first.png" }, { variables: { key: "upload-1" } });
    const retried = await uploadFile(t.url, ownKey, { bytes: firstBytes, filename: "retry.png" }, { variables: { key: "upload-1" } });
    expect(retried.errors).toBeUndefined();
    expect(retried.data.ingest.asset.id).toBe(first.data.ingest.asset.id);
    expect(retried.data.ingest.job.id).toBe(first.data.ingest.job.id);
    // Issue #19: other content under a used key is an error, no longer the first answer in silence.
    const otherBytes = await makePng(11, 10);
    const other = await uploadFile(t.url, ownKey, { bytes: otherBytes, filename: "other.png" }, { variables: { key: "upload-1" } });
    expect(other.errors?.[0]?.extensions?.code).toBe("IDEMPOTENCY_CONFLICT");
    expect(await t.app.db.asset.count({ where: { projectId } })).toBe(1);
    expect(await t.app.blobs.has(sha256(otherBytes))).toBe(false);
    // The unread upload was drained: the server still takes the next request.
    expect((await t.graphql("{ health { status } }")).data.health.status).toBe("OK");
  });

  it("makes the same uploaded bytes one asset in a project", async () => {
    const { key: ownKey, projectId } = await t.createProject();
    const wav = await makeWav(1, 8000);
    const first = await uploadFile(t.url, ownKey, { bytes: wav, filename: "a.wav" });
    const second = await uploadFile(t.url, ownKey, { bytes: wav, filename: "b.wav" });
    expect(second.data.ingest.asset.id).toBe(first.data.ingest.asset.id);
    expect(await t.app.db.asset.count({ where: { projectId } })).toBe(1);
  });
});
