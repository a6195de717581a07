import fs from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ingestContent } from "../../services/assets/ingest-service.ts";
import { readWavInfo } from "../../services/generation/wav-file.ts";
import type { FakeOpenAIServer } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { buildTinyCausalLm } from "../support/fixture-models/tiny-causal-lm/build-tiny-causal-lm.ts";
import { buildTinyCaptioner } from "../support/fixture-models/tiny-captioner/build-tiny-captioner.ts";
import { buildTinyTts } from "../support/fixture-models/tiny-tts/build-tiny-tts.ts";
import { buildTinyWhisper } from "../support/fixture-models/tiny-whisper/build-tiny-whisper.ts";
import { eventually, type TestApp } from "../support/test-app.ts";

const SECRET = "sk-generate-test-secret-5678";
let t: TestApp;
let fake: FakeOpenAIServer;
let scratch: string;
let harness: FakeProviderApp;

beforeAll(async () => {
  harness = await startFakeProviderApp({
    models: {
      "llm.default": { provider: "fake", model: "tiny-chat", retries: 0, timeoutMs: 10000 },
      "llm.vision": { provider: "fake", model: "tiny-vision", retries: 0 },
      "image.default": { provider: "fake", model: "tiny-image", retries: 0 },
      "llm.local": { provider: "local", model: "tiny-causal-lm" },
      "transcribe.default": { provider: "fake", model: "whisper-1", retries: 0 },
      "speech.local": { provider: "local", model: "tiny-tts" },
      "caption.local": { provider: "local", model: "tiny-captioner" },
      "transcribe.local": { provider: "local", model: "tiny-whisper" },
    },
    apiKey: SECRET,
    app: async (folder) => {
      const modelsDir = path.join(folder, "models");
      await buildTinyCausalLm(modelsDir);
      await buildTinyTts(modelsDir);
      await buildTinyCaptioner(modelsDir);
      await buildTinyWhisper(modelsDir);
      return { worker: true, env: { MODELS_DIR: modelsDir } };
    },
  });
  ({ t, fake, scratch } = harness);
});

afterAll(() => harness?.close());


afterEach(() => fake.reset());

const GENERATE = `mutation ($input: GenerateInput!) { generate(input: $input) { id kind status } }`;
const JOB = `query ($id: ID!) { job(id: $id) { id status output usage error { code message } } }`;

async function finished(jobId: string, key: string) {
  return eventually(async () => {
    const response = await t.graphql(JOB, { id: jobId }, key);
    const job = response.data?.job;
    return job && ["SUCCEEDED", "FAILED"].includes(job.status) ? job : null;
  }, 30_000);
}

/** Opens the jobEvents stream over SSE and collects events until the job ends. */
function collectJobEvents(jobId: string, key: string): Promise<any[]> {
  return fetch(t.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: `subscription ($id: ID!) { jobEvents(id: $id) { status token } }`, variables: { id: jobId } }),
  })
    .then((response) => response.text())
    .then((text) =>
      text
        .split("\n\n")
        .filter((block) => block.includes("event: next"))
        .map((block) => JSON.parse(block.split("\n").find((line) => line.startsWith("data: "))!.slice(6)).data.jobEvents),
    );
}

describe("generate: TEXT through an OpenAI-compatible server", () => {
  it("sends pieces that arrive together as one token event, all before SUCCEEDED (issue #20)", async () => {
    const { key } = await t.createProject();
    const content = Array.from({ length: 40 }, (_, i) => `piece${i}`).join(" ");
    fake.enqueue({ kind: "chat", content, delayMs: 700, usage: { prompt_tokens: 3, completion_tokens: 40 } });
    const published: Array<{ jobId: string; status: string; token?: string }> = [];
    const publish = t.app.events.publish.bind(t.app.events);
    const spy = vi.spyOn(t.app.events, "publish").mockImplementation(((topic: "job", id: string, event: (typeof published)[number]) => {
      if (topic === "job") published.push(event);
      return publish(topic, id, event as never);
    }) as never);
    const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "Many pieces at once." } }, key);
    const jobId = started.data.generate.id;
    const events = await collectJobEvents(jobId, key);
    const job = await finished(jobId, key);
    spy.mockRestore();
    expect(job.status).toBe("SUCCEEDED");
    const tokens = events.flatMap((event) => (event.token ? [event.token] : []));
    expect(tokens.join("")).toBe(content);
    // 40 pieces written in one burst: before, 40 events (40 Redis PUBLISHes); now a few.
    expect(tokens.length).toBeLessThan(10);
    // Besides its text, a job publishes its start and its end: one Redis PUBLISH each (no separate "started" progress).
    expect(published.filter((event) => event.jobId === jobId && !event.token).map((event) => event.status)).toEqual(["RUNNING", "SUCCEEDED"]);
    const lastToken = events.findLastIndex((event) => event.token);
    expect(events.findIndex((event) => event.status === "SUCCEEDED")).toBeGreaterThan(lastToken);
  });

  it("streams tokens over jobEvents and stores the text and the token usage on the job", async () => {
    const { key, projectId } = await t.createProject();
    // Pieces 60 ms apart: pieces that arrive together (within TOKEN_FLUSH_MS) are one event.
    fake.enqueue({ kind: "chat", content: "Tessera joins many media into one answer.", delayMs: 700, chunkDelayMs: 60, usage: { prompt_tokens: 21, completion_tokens: 8 } });
    const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "What does Tessera do?", system: "Be brief." } }, key);
    expect(started.errors).toBeUndefined();
    expect(started.data.generate).toMatchObject({ kind: "GENERATE", status: "QUEUED" });
    const jobId = started.data.generate.id;

    const events = await collectJobEvents(jobId, key);
    const job = await finished(jobId, key);
    expect(job.status).toBe("SUCCEEDED");
    expect(job.output).toMatchObject({ task: "TEXT", text: "Tessera joins many media into one answer.", model: "llm.default", finishReason: "stop" });
    const tokens = events.flatMap((event) => (event.token ? [event.token] : []));
    expect(tokens.length).toBeGreaterThan(3);
    expect(tokens.join("")).toBe(job.output.text);
    expect(job.usage).toMatchObject({ promptTokens: 21, completionTokens: 8, totalTokens: 29 });
    expect(job.usage.calls[0]).toMatchObject({ alias: "llm.default", provider: "fake", model: "tiny-chat", capability: "chat" });

    const sent = fake.requests.at(-1)!;
    expect(sent.body.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "What does Tessera do?" },
    ]);
    const row = await t.app.db.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(row.projectId).toBe(projectId);
  });

  it("passes an image attachment to the vision alias as an image part", async () => {
    const { key, projectId } = await t.createProject();
    const png = await sharp({ create: { width: 16, height: 12, channels: 3, background: "#c00" } }).png().toBuffer();
    const { asset } = await ingestContent(t.app, projectId, { bytes: png, modality: "IMAGE", mimeType: "image/png", source: "upload" });
    fake.enqueue({ kind: "chat", content: "A red rectangle." });
    const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "What colour is it?", attachments: [asset.id] } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.status).toBe("SUCCEEDED");
    expect(job.output.text).toBe("A red rectangle.");
    const sent = fake.requests.at(-1)!;
    expect(sent.body.model).toBe("tiny-vision"); // an image attachment picks llm.vision
    const parts = sent.body.messages[0].content;
    expect(parts.find((part: any) => part.type === "image_url").image_url.url).toBe(`data:image/png;base64,${png.toString("base64")}`);
    expect(parts.at(-1)).toEqual({ type: "text", text: "What colour is it?" });
  });

  it("captions an image", async () => {
    const { key, projectId } = await t.createProject();
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#0a0" } }).png().toBuffer();
    const { asset } = await ingestContent(t.app, projectId, { bytes: png, modality: "IMAGE", mimeType: "image/png", source: "upload" });
    fake.enqueue({ kind: "chat", content: " A small green square. " });
    const started = await t.graphql(GENERATE, { input: { task: "CAPTION", attachments: [asset.id] } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.output).toMatchObject({ task: "CAPTION", text: "A small green square.", model: "llm.vision" });
  });

  it("fails the job with a typed provider error, and the key appears nowhere", async () => {
    const { key } = await t.createProject();
    fake.enqueue({ kind: "error", status: 401, message: "invalid api key" });
    const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "hello" } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.status).toBe("FAILED");
    expect(job.error.code).toBe("PROVIDER_ERROR");
    expect(JSON.stringify(job)).not.toContain(SECRET);
    expect(fake.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
  });
});

describe("generate: audio and video attachments", () => {
  it("transcribes an audio asset through the transcription endpoint", async () => {
    const { key, projectId } = await t.createProject();
    const wav = await ffmpegMake(["-f", "lavfi", "-i", "sine=frequency=440:duration=1.5", "-ar", "22050", "-c:a", "pcm_s16le"], "wav");
    const { asset } = await ingestContent(t.app, projectId, { bytes: wav, modality: "AUDIO", mimeType: "audio/wav", source: "upload" });
    fake.enqueue({ kind: "transcription", text: " a steady tone " });
    const started = await t.graphql(GENERATE, { input: { task: "TRANSCRIPT", attachments: [asset.id] } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    expect(job.output).toMatchObject({ task: "TRANSCRIPT", text: "a steady tone", model: "transcribe.default" });
    const sent = fake.requests.at(-1)!;
    expect(sent.path).toBe("/v1/audio/transcriptions");
    // Multipart with the clip as 16 kHz WAV and the model's name.
    const body = (sent.body as Buffer).toString("latin1");
    expect(body).toContain("whisper-1");
    expect(body).toContain("RIFF");
  });

  it("transcribes an audio asset with a local Whisper export", async () => {
    const { key, projectId } = await t.createProject();
    const wav = await ffmpegMake(["-f", "lavfi", "-i", "sine=frequency=300:duration=2", "-ar", "44100", "-c:a", "pcm_s16le"], "wav");
    const { asset } = await ingestContent(t.app, projectId, { bytes: wav, modality: "AUDIO", mimeType: "audio/wav", source: "upload" });
    const started = await t.graphql(GENERATE, { input: { task: "TRANSCRIPT", attachments: [asset.id], model: "transcribe.local" } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    // Decoded by ffmpeg to 16 kHz, then log-mel, encoder and decoder loop: the fixture hears a sound.
    expect(job.output).toMatchObject({ task: "TRANSCRIPT", text: "tuvwxyz", model: "transcribe.local" });
  });

  it("gives a chat model a video as frames in time order plus the transcript of its sound", async () => {
    const { key, projectId } = await t.createProject();
    const mp4 = await ffmpegMake(
      ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=3", "-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"],
      "mp4",
    );
    const { asset } = await ingestContent(t.app, projectId, { bytes: mp4, modality: "VIDEO", mimeType: "video/mp4", source: "upload" });
    fake.enqueue({ kind: "transcription", text: "a low hum" }, { kind: "chat", content: "A test pattern with a hum." });
    const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "What is this video?", attachments: [asset.id] } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    const chat = fake.requests.at(-1)!;
    expect(chat.body.model).toBe("tiny-vision");
    const parts = chat.body.messages[0].content;
    const frames = parts.filter((part: any) => part.type === "image_url");
    expect(frames.length).toBeGreaterThanOrEqual(3);
    expect(frames[0].image_url.url).toMatch(/^data:image\/jpeg;base64,/);
    expect(parts.some((part: any) => part.type === "text" && part.text.includes("Transcript of its sound: a low hum"))).toBe(true);
    expect(parts.at(-1)).toEqual({ type: "text", text: "What is this video?" });
    // The transcription's call and the chat's call both count.
    expect(job.usage.calls.map((call: any) => call.capability)).toEqual(["transcribe", "chat"]);
  });
});

describe("generate: TEXT with a local model", () => {
  it("runs the tiny causal LM through transformers.js' generation loop and counts its tokens", async () => {
    const { key } = await t.createProject();
    const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "abc", model: "llm.local", maxTokens: 5 } }, key);
    expect(started.errors).toBeUndefined();
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    // The fixture is a bigram model: each letter is followed by the next one.
    expect(job.output).toMatchObject({ task: "TEXT", text: "defgh", model: "llm.local", finishReason: "length" });
    expect(job.usage).toMatchObject({ promptTokens: 3, completionTokens: 5, totalTokens: 8 });
  });

  it("captions an image with a local vision-encoder-decoder export", async () => {
    const { key, projectId } = await t.createProject();
    const png = await sharp({ create: { width: 24, height: 24, channels: 3, background: "#e00" } }).png().toBuffer();
    const { asset } = await ingestContent(t.app, projectId, { bytes: png, modality: "IMAGE", mimeType: "image/png", source: "upload" });
    const started = await t.graphql(GENERATE, { input: { task: "CAPTION", attachments: [asset.id], model: "caption.local" } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    expect(job.output).toMatchObject({ task: "CAPTION", text: "rstuvwxyz", model: "caption.local" }); // red leads to "r"
  });

  it("stops at the end-of-text token", async () => {
    const { key } = await t.createProject();
    const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "wx", model: "llm.local", maxTokens: 20 } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.output).toMatchObject({ text: "yz", finishReason: "stop" });
  });
});

describe("generate: media out", () => {
  let speechAsset: { id: string; sha256: string } | undefined;

  it("speaks with espeak-ng into an AUDIO asset that ingest accepts", async () => {
    const { key, projectId } = await t.createProject();
    const text = "Hello from Tessera. This sentence was spoken by a machine.";
    const started = await t.graphql(GENERATE, { input: { task: "SPEECH", prompt: text } }, key);
    expect(started.errors).toBeUndefined();
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    expect(job.output).toMatchObject({ task: "SPEECH", modality: "AUDIO", mimeType: "audio/wav", model: "speech.default" });
    expect(job.output.durationSec).toBeGreaterThan(1.5);

    const asset = await t.app.db.asset.findFirstOrThrow({ where: { id: job.output.assetId, projectId } });
    expect(asset).toMatchObject({ modality: "AUDIO", mimeType: "audio/wav", tags: ["generated"] });
    expect(asset.metadata).toMatchObject({ generated: { task: "SPEECH", jobId: job.id } });
    const wav = readWavInfo(await t.app.blobs.read(asset.sha256));
    expect(wav).toMatchObject({ channels: 1, bitsPerSample: 16 });

    const ingested = await eventually(async () => {
      const row = await t.app.db.job.findFirst({ where: { id: job.output.ingestJobId, projectId } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 60_000);
    expect(ingested.error).toBeNull();
    expect(ingested.status).toBe("SUCCEEDED");
    expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).status).toBe("READY");
    speechAsset = asset;
  });

  it("makes speech whose VAD finds speech (the worker's Silero VAD)", async (context) => {
    if (!t.app.models.list().some((model) => model.task === "vad")) context.skip("no VAD model is served by this worker");
    expect(speechAsset).toBeDefined();
    const samples = await pcm16k(await t.app.blobs.localPath(speechAsset!.sha256));
    const segments = await t.app.models.detectSpeech(samples);
    const spoken = segments.reduce((sum, segment) => sum + (segment.end - segment.start), 0);
    expect(segments.length).toBeGreaterThan(0);
    expect(spoken).toBeGreaterThan(1);
    // And silence of the same length has none: the VAD is listening, not agreeing.
    expect(await t.app.models.detectSpeech(new Float32Array(samples.length))).toEqual([]);
  });

  it("speaks with an ONNX text-to-speech export from MODELS_DIR when the alias names one", async () => {
    const { key, projectId } = await t.createProject();
    const started = await t.graphql(GENERATE, { input: { task: "SPEECH", prompt: "tessera", model: "speech.local" } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    expect(job.output).toMatchObject({ task: "SPEECH", modality: "AUDIO", model: "speech.local" });
    expect(job.output.durationSec).toBeCloseTo(0.7, 5); // seven characters, 0.1 s each in the fixture
    const asset = await t.app.db.asset.findFirstOrThrow({ where: { id: job.output.assetId, projectId } });
    expect(readWavInfo(await t.app.blobs.read(asset.sha256)).sampleRate).toBe(16000);
    await eventually(async () => (await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).status === "READY", 60_000);
  });

  it("draws through the images endpoint into an IMAGE asset that goes through ingest", async () => {
    const { key, projectId } = await t.createProject();
    const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: "#123456" } }).png().toBuffer();
    fake.enqueue({ kind: "image", png, revisedPrompt: "a dark blue tile" });
    const started = await t.graphql(GENERATE, { input: { task: "IMAGE", prompt: "a blue tile", size: "256x256" } }, key);
    const job = await finished(started.data.generate.id, key);
    expect(job.error).toBeNull();
    expect(job.output).toMatchObject({ task: "IMAGE", modality: "IMAGE", mimeType: "image/png", model: "image.default" });
    expect(fake.requests.at(-1)!.body).toMatchObject({ model: "tiny-image", prompt: "a blue tile", size: "256x256" });
    const asset = await t.app.db.asset.findFirstOrThrow({ where: { id: job.output.assetId, projectId } });
    expect((await t.app.blobs.read(asset.sha256)).equals(png)).toBe(true);
    expect(asset.metadata).toMatchObject({ generated: { task: "IMAGE", revisedPrompt: "a dark blue tile" } });
    await eventually(async () => (await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).status === "READY", 60_000);
  });
});

describe("generate: bad input changes nothing", () => {
  it("refuses each bad request with a typed error and creates no job", async () => {
    const { key, projectId } = await t.createProject();
    const other = await t.createProject();
    const text = await ingestContent(t.app, projectId, { bytes: Buffer.from("some notes"), modality: "TEXT", mimeType: "text/plain", source: "text" });
    const foreign = await ingestContent(t.app, other.projectId, { bytes: Buffer.from("not yours"), modality: "TEXT", mimeType: "text/plain", source: "text" });
    const jobsBefore = await t.app.db.job.count({ where: { projectId } });

    const cases: Array<[Record<string, unknown>, string]> = [
      [{ task: "TEXT", prompt: "hi", model: "llm.nonexistent" }, "MODEL_NOT_FOUND"],
      [{ task: "TEXT" }, "BAD_USER_INPUT"],
      [{ task: "TEXT", prompt: "   " }, "BAD_USER_INPUT"],
      [{ task: "TEXT", prompt: "hi", attachments: [foreign.asset.id] }, "NOT_FOUND"],
      [{ task: "TEXT", prompt: "hi", attachments: ["not-a-uuid"] }, "BAD_USER_INPUT"],
      [{ task: "CAPTION", attachments: [text.asset.id] }, "BAD_USER_INPUT"],
      [{ task: "TRANSCRIPT", attachments: [] }, "BAD_USER_INPUT"],
      [{ task: "SPEECH", prompt: "x".repeat(5001) }, "BAD_USER_INPUT"],
      [{ task: "IMAGE", prompt: "a cat", size: "huge" }, "BAD_USER_INPUT"],
      [{ task: "TEXT", prompt: "hi", temperature: 7 }, "BAD_USER_INPUT"],
    ];
    for (const [input, code] of cases) {
      const response = await t.graphql(GENERATE, { input }, key);
      expect(response.errors?.[0]?.extensions?.code, JSON.stringify(input).slice(0, 80)).toBe(code);
      expect(response.data).toBeNull();
    }
    expect(await t.app.db.job.count({ where: { projectId } })).toBe(jobsBefore);
  });

  it("refuses a generate past QUOTA_CONCURRENT_JOBS with the quota's figures and stores nothing; once one ends, the next gets in", async () => {
    const { key, projectId } = await t.createProject();
    const limit = t.app.config.QUOTA_CONCURRENT_JOBS;
    // Jobs queued and never picked up (no queue entry): they hold the project's slots.
    await t.app.db.job.createMany({ data: Array.from({ length: limit }, () => ({ projectId, kind: "GENERATE" as const, input: {} })) });
    const refused = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "one too many" } }, key);
    expect(refused.errors?.[0]?.extensions?.code).toBe("QUOTA_EXCEEDED");
    expect(refused.errors?.[0]?.extensions?.details).toMatchObject({ quota: "QUOTA_CONCURRENT_JOBS", limit, used: limit });
    expect(await t.app.db.job.count({ where: { projectId } })).toBe(limit);

    const oldest = await t.app.db.job.findFirstOrThrow({ where: { projectId } });
    await t.app.db.job.update({ where: { id: oldest.id }, data: { status: "SUCCEEDED" } });
    fake.enqueue({ kind: "chat", content: "let in" });
    const admitted = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "now there is room" } }, key);
    expect(admitted.errors).toBeUndefined();
    expect(await t.app.db.job.count({ where: { projectId } })).toBe(limit + 1);
  });

  it("needs an API key", async () => {
    const response = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "hi" } });
    expect(response.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });

  it("returns the first job for a retried idempotency key", async () => {
    const { key, projectId } = await t.createProject();
    fake.enqueue({ kind: "chat", content: "once" });
    const first = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "hi", idempotencyKey: "gen-1" } }, key);
    const second = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "hi", idempotencyKey: "gen-1" } }, key);
    expect(second.data.generate.id).toBe(first.data.generate.id);
    await finished(first.data.generate.id, key);
    expect(await t.app.db.job.count({ where: { projectId, kind: "GENERATE" } })).toBe(1);
  });

  it("refuses another request under a used idempotency key with IDEMPOTENCY_CONFLICT, and starts nothing", async () => {
    const { key, projectId } = await t.createProject();
    fake.enqueue({ kind: "chat", content: "once" });
    const first = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "hi", idempotencyKey: "gen-2" } }, key);
    expect(first.errors).toBeUndefined();
    for (const other of [{ prompt: "something else" }, { prompt: "hi", temperature: 0.5 }, { prompt: "hi", model: "llm.other" }]) {
      const second = await t.graphql(GENERATE, { input: { task: "TEXT", ...other, idempotencyKey: "gen-2" } }, key);
      expect(second.errors?.[0]?.extensions?.code, JSON.stringify(other)).toBe("IDEMPOTENCY_CONFLICT");
      expect(second.errors?.[0]?.message).toContain(first.data.generate.id);
    }
    await finished(first.data.generate.id, key);
    expect(await t.app.db.job.count({ where: { projectId, kind: "GENERATE" } })).toBe(1);
  });

  it("gives racing requests with one idempotency key one job", async () => {
    const { key, projectId } = await t.createProject();
    fake.enqueue({ kind: "chat", content: "raced" });
    const responses = await Promise.all(
      Array.from({ length: 4 }, () => t.graphql(GENERATE, { input: { task: "TEXT", prompt: "race", idempotencyKey: "race-1" } }, key)),
    );
    const ids = new Set(responses.map((response) => response.data?.generate.id));
    expect(ids.size).toBe(1);
    await finished([...ids][0], key);
    expect(await t.app.db.job.count({ where: { projectId, kind: "GENERATE" } })).toBe(1);
  });
});

/** Real media from ffmpeg's lavfi sources. */
async function ffmpegMake(args: string[], extension: string): Promise<Buffer> {
  const { execFile } = await import("node:child_process");
  const file = path.join(scratch, `fixture-${Math.random().toString(36).slice(2)}.${extension}`);
  await new Promise<void>((resolve, reject) => execFile("ffmpeg", ["-v", "error", "-y", ...args, file], (error) => (error ? reject(error) : resolve())));
  return fs.readFile(file);
}

/** 16 kHz mono float PCM, decoded by ffmpeg. */
async function pcm16k(file: string): Promise<Float32Array> {
  const { execFile } = await import("node:child_process");
  const stdout = await new Promise<Buffer>((resolve, reject) =>
    execFile("ffmpeg", ["-v", "error", "-i", file, "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"], { encoding: "buffer", maxBuffer: 1 << 26 }, (error, out) =>
      error ? reject(error) : resolve(out),
    ),
  );
  const samples = new Float32Array(stdout.length >> 2);
  new Uint8Array(samples.buffer).set(stdout.subarray(0, samples.length * 4));
  return samples;
}
