import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingestContent } from "../../services/assets/ingest-service.ts";
import type { Modality } from "../../services/core/database.ts";
import type { FakeOpenAIServer, RecordedRequest } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { makeMp4 } from "../support/media-fixtures.ts";
import { eventually, type TestApp } from "../support/test-app.ts";

// The examples run end to end: real ingest, real VAD and sentence embeddings,
// real search; only the hosted language, vision and transcription models are
// the fake OpenAI-compatible server (paid external APIs).
const examples = path.resolve(import.meta.dirname, "..", "..", "workflows", "examples");
let t: TestApp;
let fake: FakeOpenAIServer;
let scratch: string;
let key: string;
let projectId: string;
let harness: FakeProviderApp;

beforeAll(async () => {
  harness = await startFakeProviderApp({
    models: {
      "llm.default": { provider: "fake", model: "chat-model", retries: 0 },
      "llm.vision": { provider: "fake", model: "vision-model", retries: 0 },
      "transcribe.default": { provider: "fake", model: "whisper-1", retries: 0 },
    },
    app: async (folder) => {
      // The committed model manifests only (VAD, sentence embeddings, OCR, ...): a half-made one in a checkout does not leak in.
      const modelsDir = path.join(folder, "models");
      await fs.mkdir(modelsDir);
      const root = path.resolve(import.meta.dirname, "..", "..");
      const { stdout } = await promisify(execFile)("git", ["ls-files", "models/*.yaml"], { cwd: root });
      for (const manifest of stdout.split("\n").filter(Boolean)) await fs.copyFile(path.join(root, manifest), path.join(modelsDir, path.basename(manifest)));
      return { worker: { concurrency: 4 }, env: { MODELS_DIR: modelsDir } };
    },
  });
  ({ t, fake, scratch } = harness);
  ({ key, projectId } = await t.createProject());
  // Each kind of request gets its kind of answer, whatever order parallel steps send them in.
  fake.setFallback((request: RecordedRequest) => {
    if (request.path.endsWith("/audio/transcriptions")) return { kind: "transcription", text: "Welcome to the quarterly planning meeting about the lighthouse restoration." };
    if (request.body?.model === "vision-model") return { kind: "chat", content: "A red bicycle leaning against a blue wall; a sign reads OPEN." };
    return { kind: "chat", content: "0:01 The lighthouse restoration is the main topic of the quarterly planning meeting." };
  });
});

afterAll(() => harness?.close());

async function ingestReady(bytes: Buffer, modality: Modality, mimeType: string) {
  const { asset } = await ingestContent(t.app, projectId, { bytes, modality, mimeType, source: "upload" });
  await eventually(async () => {
    const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
    if (row.status === "FAILED") throw new Error(`ingest failed: ${JSON.stringify(row.error)}`);
    return row.status === "READY";
  }, 60_000);
  return asset;
}

async function runExample(file: string, input: Record<string, unknown>) {
  const definition = await fs.readFile(path.join(examples, file), "utf8");
  const published = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { slug } }`, { d: definition }, key);
  expect(published.errors).toBeUndefined();
  const started = await t.graphql(
    `mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`,
    { slug: published.data.publishWorkflow.slug, input },
    key,
  );
  expect(started.errors).toBeUndefined();
  const runId = started.data.runWorkflow.id;
  return eventually(async () => {
    const response = await t.graphql(`query ($id: ID!) { run(id: $id) { status output error { code message } steps { id status error { message } } } }`, { id: runId }, key);
    const run = response.data.run;
    return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(run.status) ? run : null;
  }, 90_000);
}

async function searchIds(text: string) {
  const response = await t.graphql(`query ($text: String!) { search(input: { text: $text, limit: 10 }) { hits { asset { id } snippet } } }`, { text }, key);
  expect(response.errors).toBeUndefined();
  return response.data.search.hits as Array<{ asset: { id: string }; snippet: string | null }>;
}

describe("workflows/examples end to end", () => {
  it("caption-and-index: captions an image and makes it findable by the caption", async () => {
    const png = await sharp({ create: { width: 32, height: 24, channels: 3, background: "#c00" } }).png().toBuffer();
    const image = await ingestReady(png, "IMAGE", "image/png");
    const run = await runExample("caption-and-index.yaml", { image: image.id });
    expect(run.error).toBeNull();
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output.caption).toBe("A red bicycle leaning against a blue wall; a sign reads OPEN.");
    const hits = await searchIds("bicycle by a wall");
    expect(hits[0]?.asset.id).toBe(image.id);
    expect(hits[0]?.snippet).toContain("bicycle");
  });

  it("video-digest: reads frames and audio in parallel, summarises, and indexes the summary", async () => {
    const video = await ingestReady(await makeMp4(2), "VIDEO", "video/mp4");
    const run = await runExample("video-digest.yaml", { video: video.id });
    expect(run.error).toBeNull();
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output.transcript).toContain("lighthouse restoration");
    expect(run.output.onScreen).toContain("OPEN");
    const summaryPrompt = fake.requests.find((request) => request.body?.model === "chat-model" && JSON.stringify(request.body).includes("Transcript:"));
    expect(JSON.stringify(summaryPrompt?.body)).toContain("a sign reads OPEN");
    const hits = await searchIds("lighthouse restoration planning");
    expect(hits.map((hit) => hit.asset.id)).toContain(video.id);
  });

  it("audio-notes: finds the speech with VAD, transcribes it, writes notes and indexes them", async () => {
    const wavPath = path.join(scratch, "speech.wav");
    await promisify(execFile)("espeak-ng", ["-w", wavPath, "Welcome to the quarterly planning meeting. Today we talk about the lighthouse."]);
    const audio = await ingestReady(await fs.readFile(wavPath), "AUDIO", "audio/wav");
    const run = await runExample("audio-notes.yaml", { audio: audio.id });
    expect(run.error).toBeNull();
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output.segments.length).toBeGreaterThan(0);
    expect(run.output.segments[0].end).toBeGreaterThan(run.output.segments[0].start);
    expect(run.output.notes).toContain("lighthouse");
    const hits = await searchIds("lighthouse restoration notes");
    expect(hits.map((hit) => hit.asset.id)).toContain(audio.id);
  });

  it("audio-notes: skips transcription and notes when no one speaks", async () => {
    const wavPath = path.join(scratch, "silence.wav");
    await promisify(execFile)("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2", "-y", wavPath]);
    const silence = await ingestReady(await fs.readFile(wavPath), "AUDIO", "audio/wav");
    const run = await runExample("audio-notes.yaml", { audio: silence.id });
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output.segments).toEqual([]);
    const steps = Object.fromEntries(run.steps.map((step: { id: string; status: string }) => [step.id, step.status]));
    expect(steps).toMatchObject({ speech: "SUCCEEDED", transcript: "SKIPPED", notes: "SKIPPED", index: "SKIPPED" });
  });
});
