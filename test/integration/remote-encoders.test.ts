import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { DecodedImage } from "../../services/assets/decoded-media.ts";
import { TesseraError } from "../../services/core/errors.ts";
import { createLogger } from "../../services/core/logger.ts";
import { createModelRuntime, type LocalModelRuntime } from "../../services/models/local-model-runtime.ts";
import { BUILT_IN_MANIFESTS_DIR } from "../../services/models/model-registry.ts";
import { renderSvg } from "../support/fixture-models/model-fixtures.ts";
import { startKserveServer, startOpenAiEmbeddingsServer, type TestInferenceServer } from "../support/inference-servers.ts";

/*
 * Remote encoders against servers that implement KServe v2 (JSON and binary tensors) and the OpenAI embeddings
 * API from their specifications, both running the bundled emoji CLIP: the remote vectors must equal the local
 * adapter's for the same texts and images, and every failure must be the typed error its cause calls for.
 */
const logger = createLogger("silent", "test");
const TEXTS = ["a red apple", "a smiling face with sunglasses", "rocket launching into space"];
let images: DecodedImage[];
let local: LocalModelRuntime;
let localText: Float32Array[];
let localImages: Float32Array[];
const opened: Array<{ close(): Promise<void> }> = [];
const manifestDirs: string[] = [];

beforeAll(async () => {
  images = await Promise.all([
    renderSvg(`<svg xmlns="http://www.w3.org/2000/svg" width="120" height="90"><circle cx="60" cy="45" r="35" fill="#d22"/></svg>`),
    renderSvg(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect x="8" y="8" width="48" height="48" fill="#24c"/></svg>`),
  ]);
  local = createModelRuntime({ modelsDir: BUILT_IN_MANIFESTS_DIR, manifestDirs: [BUILT_IN_MANIFESTS_DIR], models: ["tessera-emoji-clip"], logger, device: "cpu" });
  localText = (await local.embedText(TEXTS)).find((entry) => entry.space === "image-text")!.vectors;
  localImages = (await local.embedImages(images)).find((entry) => entry.space === "image-text")!.vectors;
}, 120_000);

afterAll(async () => {
  await local?.close();
  await Promise.all(manifestDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((item) => item.close()));
});

async function track<T extends { close(): Promise<void> }>(item: Promise<T>): Promise<T> {
  const value = await item;
  opened.push(value);
  return value;
}

/** A runtime that serves exactly one manifest (JSON is YAML), with the repository's models/ as MODELS_DIR. */
async function runtimeWith(manifest: Record<string, unknown>): Promise<LocalModelRuntime> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-remote-manifest-"));
  manifestDirs.push(dir);
  await fs.writeFile(path.join(dir, `${manifest.name as string}.yaml`), JSON.stringify(manifest));
  const runtime = createModelRuntime({ modelsDir: BUILT_IN_MANIFESTS_DIR, manifestDirs: [dir], logger, device: "cpu" });
  expect(runtime.manifestProblems()).toEqual([]);
  opened.push(runtime);
  return runtime;
}

function kserveManifest(server: TestInferenceServer, overrides: { remote?: Record<string, unknown>; [key: string]: unknown } = {}) {
  const { remote, ...rest } = overrides;
  return {
    name: "emoji-triton",
    task: "embed",
    modality: "IMAGE",
    format: "remote",
    adapter: "kserve-v2-encoder",
    files: { tokenizer: "tessera-emoji-clip" },
    remote: { url: server.url, models: { text: "emoji_text", image: "emoji_vision" }, retries: 2, backoffMs: 10, timeoutMs: 10_000, ...remote },
    inputs: { text: "input_ids", mask: "attention_mask", image: "pixel_values" },
    outputs: { text: "text_embeds", image: "image_embeds" },
    preprocessing: { text: { maxLength: 32 } },
    output: { space: "image-text", dimensions: 128, normalize: true },
    batch: { maxBatchSize: 8, maxWaitMs: 5 },
    ...rest,
  };
}

function openAiManifest(server: TestInferenceServer, overrides: { remote?: Record<string, unknown>; [key: string]: unknown } = {}) {
  const { remote, ...rest } = overrides;
  return {
    name: "emoji-infinity",
    task: "embed",
    modality: "IMAGE",
    format: "remote",
    adapter: "openai-embeddings-encoder",
    files: {},
    remote: { url: server.url, models: { text: "emoji-clip", image: "emoji-clip" }, retries: 2, backoffMs: 10, timeoutMs: 10_000, ...remote },
    output: { space: "image-text", dimensions: 128, normalize: true },
    batch: { maxBatchSize: 8, maxWaitMs: 5 },
    ...rest,
  };
}

async function imageTextVectors(result: Promise<Array<{ space: string; model: string; vectors: Float32Array[] }>>) {
  const entries = await result;
  const entry = entries.find((candidate) => candidate.space === "image-text");
  expect(entry).toBeDefined();
  return entry!;
}

function expectSameVectors(actual: Float32Array[], expected: Float32Array[]) {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((vector, row) => {
    expect(vector.length).toBe(expected[row]!.length);
    const worst = Math.max(...vector.map((value, index) => Math.abs(value - expected[row]![index]!)));
    expect(worst).toBeLessThan(1e-4);
  });
}

async function failure(promise: Promise<unknown>): Promise<TesseraError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(TesseraError);
    return error as TesseraError;
  }
  throw new Error("expected a failure");
}

describe("KServe v2 encoder (Triton's protocol)", () => {
  it("binary tensors: texts and images give the local CLIP's vectors, in the server's batches", async () => {
    const server = await track(startKserveServer());
    const runtime = await runtimeWith(kserveManifest(server));
    expect(runtime.list()).toContainEqual({ name: "emoji-triton", modality: "IMAGE", task: "embed", dimensions: 128, device: "remote", space: "image-text" });
    const text = await imageTextVectors(runtime.embedText(TEXTS));
    expect(text.model).toBe("emoji-triton");
    expectSameVectors(text.vectors, localText);
    expectSameVectors((await imageTextVectors(runtime.embedImages(images))).vectors, localImages);
    const infers = server.calls.filter((call) => call.path.endsWith("/infer"));
    expect(infers.every((call) => call.binary)).toBe(true);
    expect(infers.map((call) => call.batch).reduce((sum, batch) => sum + batch, 0)).toBe(TEXTS.length + images.length);
  });

  it("JSON tensors (binary: false) and a pinned version give the same vectors", async () => {
    const server = await track(startKserveServer());
    const runtime = await runtimeWith(kserveManifest(server, { remote: { binary: false, version: "1" } }));
    expectSameVectors((await imageTextVectors(runtime.embedText(TEXTS))).vectors, localText);
    expectSameVectors((await imageTextVectors(runtime.embedImages(images))).vectors, localImages);
    const infers = server.calls.filter((call) => call.path.endsWith("/infer"));
    expect(infers.length).toBeGreaterThan(0);
    expect(infers.every((call) => !call.binary && call.path.includes("/versions/1/"))).toBe(true);
  });

  it("text as a BYTES tensor to a model that tokenises on the server", async () => {
    const server = await track(startKserveServer());
    const manifest = kserveManifest(server, { files: {}, inputs: { text: "TEXT" }, remote: { models: { text: "emoji_text_raw" } } });
    const runtime = await runtimeWith(manifest);
    expectSameVectors((await imageTextVectors(runtime.embedText(TEXTS))).vectors, localText);
    // A text-only model is no image encoder.
    expect(runtime.spacesFor("IMAGE")).toEqual([]);
  });

  it("concurrent calls are batched up to the manifest's maxBatchSize", async () => {
    const server = await track(startKserveServer());
    const runtime = await runtimeWith(kserveManifest(server, { batch: { maxBatchSize: 2, maxWaitMs: 20 } }));
    const texts = ["one", "two", "three", "four", "five"];
    const results = await Promise.all(texts.map((text) => runtime.embedText([text])));
    expect(results.map((entries) => entries[0]!.vectors).flat()).toHaveLength(5);
    const batches = server.calls.filter((call) => call.path.endsWith("/infer")).map((call) => call.batch);
    expect(batches.reduce((sum, batch) => sum + batch, 0)).toBe(5);
    expect(Math.max(...batches)).toBe(2);
  });

  it("a 503 is tried again and then answers", async () => {
    const server = await track(startKserveServer());
    const runtime = await runtimeWith(kserveManifest(server));
    await runtime.embedText(["warm up"]);
    server.faults.push({ status: 503, retryAfterSeconds: 0 });
    const before = server.calls.length;
    expectSameVectors((await imageTextVectors(runtime.embedText([TEXTS[0]!]))).vectors, [localText[0]!]);
    expect(server.calls.length - before).toBe(2);
  });

  it("a 5xx that lasts past the retries is a retryable MODEL_ERROR", async () => {
    const server = await track(startKserveServer());
    const runtime = await runtimeWith(kserveManifest(server));
    await runtime.embedText(["warm up"]);
    server.faults.push({ status: 500 }, { status: 502 }, { status: 503 });
    const error = await failure(runtime.embedText(["x"]));
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.details).toMatchObject({ model: "emoji-triton", status: 503, attempts: 3, retryable: true });
  });

  it("a 400 is permanent: BAD_USER_INPUT at once, no retry", async () => {
    const server = await track(startKserveServer());
    const runtime = await runtimeWith(kserveManifest(server));
    await runtime.embedText(["warm up"]);
    server.faults.push({ status: 400, message: "unexpected shape for input 'input_ids'" });
    const before = server.calls.length;
    const error = await failure(runtime.embedText(["x"]));
    expect(error.code).toBe("BAD_USER_INPUT");
    expect(error.message).toContain("unexpected shape for input 'input_ids'");
    expect(error.details).toMatchObject({ status: 400, retryable: false });
    expect(server.calls.length - before).toBe(1);
  });

  it("a server slower than timeoutMs is a TIMEOUT", async () => {
    const server = await track(startKserveServer());
    const runtime = await runtimeWith(kserveManifest(server, { remote: { timeoutMs: 300, retries: 0 } }));
    await runtime.embedText(["warm up"]);
    server.faults.push({ delayMs: 1500 });
    const error = await failure(runtime.embedText(["x"]));
    expect(error.code).toBe("TIMEOUT");
    expect(error.details).toMatchObject({ timeoutMs: 300 });
  });

  it("a vector size the manifest does not promise is refused: at load from the metadata, or in the answer", async () => {
    const server = await track(startKserveServer());
    const atLoad = await failure((await runtimeWith(kserveManifest(server, { output: { space: "image-text", dimensions: 64 } }))).embedText(["x"]));
    expect(atLoad.code).toBe("MODEL_ERROR");
    expect(atLoad.details).toMatchObject({ reason: "DIMENSION_MISMATCH", expected: 64, got: 128 });

    server.dynamicOutputShape = true;
    const inAnswer = await failure((await runtimeWith(kserveManifest(server, { name: "emoji-triton-64", output: { space: "image-text", dimensions: 64 } }))).embedText(["x"]));
    expect(inAnswer.code).toBe("MODEL_ERROR");
    expect(inAnswer.details).toMatchObject({ reason: "DIMENSION_MISMATCH", expected: 64, got: 128 });
  });

  it("tensor names the server's model lacks, an unknown model, and a server not ready are refused at load", async () => {
    const server = await track(startKserveServer());
    const wrongInput = await failure((await runtimeWith(kserveManifest(server, { inputs: { text: "ids", mask: "attention_mask", image: "pixel_values" } }))).embedText(["x"]));
    expect(wrongInput).toMatchObject({ code: "MODEL_ERROR", details: { reason: "MANIFEST_MISMATCH", serverModel: "emoji_text" } });
    expect(wrongInput.message).toMatch(/has no input ids/);

    const unknown = await failure((await runtimeWith(kserveManifest(server, { name: "nope", remote: { models: { text: "no_such_model" } } }))).embedText(["x"]));
    expect(unknown.code).toBe("MODEL_NOT_FOUND");

    server.ready = false;
    const notReady = await failure((await runtimeWith(kserveManifest(server, { name: "later" }))).embedText(["x"]));
    expect(notReady).toMatchObject({ code: "MODEL_ERROR", details: { status: 503, retryable: true } });
  });

  it("an unreachable server is a retryable MODEL_ERROR after the retries", async () => {
    const server = await startKserveServer();
    await server.close();
    const error = await failure((await runtimeWith(kserveManifest(server, { remote: { retries: 1 } }))).embedText(["x"]));
    expect(error).toMatchObject({ code: "MODEL_ERROR", details: { reason: "UNREACHABLE", attempts: 2, retryable: true } });
    // What reaches an API caller names the model, not the internal address.
    expect(error.message).toBe("model emoji-triton: the inference server could not be reached (ECONNREFUSED)");
    expect(JSON.stringify(error.details)).not.toContain(new URL(server.url).port);
  });
});

describe("OpenAI-compatible embeddings encoder (Infinity, TEI, vLLM)", () => {
  it("texts and images (Infinity's modality request) give the local CLIP's vectors, with the bearer key", async () => {
    const server = await track(startOpenAiEmbeddingsServer({ apiKey: "sk-test-remote-encoder" }));
    process.env.TEST_EMBEDDINGS_KEY = "sk-test-remote-encoder";
    const runtime = await runtimeWith(openAiManifest(server, { remote: { apiKeyEnv: "TEST_EMBEDDINGS_KEY" } }));
    expectSameVectors((await imageTextVectors(runtime.embedText(TEXTS))).vectors, localText);
    expectSameVectors((await imageTextVectors(runtime.embedImages(images))).vectors, localImages);
    expect(server.calls.every((call) => call.authorization === "Bearer sk-test-remote-encoder")).toBe(true);
    const imageCall = server.calls.find((call) => call.body.modality === "image")!;
    expect((imageCall.body.input as string[]).every((url) => url.startsWith("data:image/png;base64,"))).toBe(true);
  });

  it("images one request each in vLLM's messages form", async () => {
    const server = await track(startOpenAiEmbeddingsServer());
    const runtime = await runtimeWith(openAiManifest(server, { remote: { imageRequest: "vllm-messages" } }));
    expectSameVectors((await imageTextVectors(runtime.embedImages(images))).vectors, localImages);
    expect(server.calls.filter((call) => call.body.messages)).toHaveLength(images.length);
  });

  it("a text-only model (TEI) is used for text and not for images; batches follow maxBatchSize", async () => {
    const server = await track(startOpenAiEmbeddingsServer());
    const runtime = await runtimeWith(openAiManifest(server, { modality: "TEXT", remote: { models: { text: "emoji-clip" } }, batch: { maxBatchSize: 2, maxWaitMs: 20 } }));
    expect(runtime.spacesFor("IMAGE")).toEqual([]);
    expect(runtime.spacesFor("TEXT")).toEqual(["image-text"]);
    const results = await Promise.all(TEXTS.map((text) => runtime.embedText([text])));
    expectSameVectors(results.map((entries) => entries[0]!.vectors[0]!), localText);
    expect(Math.max(...server.calls.map((call) => call.batch))).toBeLessThanOrEqual(2);
  });

  it("a 429 with Retry-After is waited out and tried again", async () => {
    const server = await track(startOpenAiEmbeddingsServer());
    const runtime = await runtimeWith(openAiManifest(server));
    server.faults.push({ status: 429, retryAfterSeconds: 0 });
    expectSameVectors((await imageTextVectors(runtime.embedText([TEXTS[1]!]))).vectors, [localText[1]!]);
    expect(server.calls).toHaveLength(2);
  });

  it("a wrong key is a permanent BAD_USER_INPUT that names no key; an unknown model is MODEL_NOT_FOUND", async () => {
    const server = await track(startOpenAiEmbeddingsServer({ apiKey: "sk-right-key-123456" }));
    process.env.TEST_EMBEDDINGS_WRONG_KEY = "sk-wrong-key-654321";
    const runtime = await runtimeWith(openAiManifest(server, { remote: { apiKeyEnv: "TEST_EMBEDDINGS_WRONG_KEY" } }));
    const error = await failure(runtime.embedText(["x"]));
    expect(error).toMatchObject({ code: "BAD_USER_INPUT", details: { status: 401, retryable: false } });
    expect(server.calls).toHaveLength(1);
    expect(JSON.stringify({ message: error.message, details: error.details })).not.toContain("sk-wrong-key-654321");

    process.env.TEST_EMBEDDINGS_WRONG_KEY = "sk-right-key-123456";
    const other = await runtimeWith(openAiManifest(server, { name: "other-model", remote: { apiKeyEnv: "TEST_EMBEDDINGS_WRONG_KEY", models: { text: "text-embedding-3-small" } } }));
    expect((await failure(other.embedText(["x"]))).code).toBe("MODEL_NOT_FOUND");
  });

  it("vectors of another size than the manifest's are a typed error", async () => {
    const server = await track(startOpenAiEmbeddingsServer({ dimensions: 96 }));
    const runtime = await runtimeWith(openAiManifest(server));
    const error = await failure(runtime.embedText(["x"]));
    expect(error).toMatchObject({ code: "MODEL_ERROR", details: { reason: "DIMENSION_MISMATCH", expected: 128, got: 96 } });
  });
});

describe("remote encoder manifests", () => {
  it("a manifest whose URL variable is unset is known but not served, with the reason", async () => {
    delete process.env.TESSERA_TEST_UNSET_URL;
    const runtime = await runtimeWith({ ...openAiManifest({ url: "" } as TestInferenceServer), remote: { urlEnv: "TESSERA_TEST_UNSET_URL", models: { text: "m" } } });
    expect(runtime.list()).toEqual([]);
    expect(runtime.describe()[0]!.missing).toEqual(["$TESSERA_TEST_UNSET_URL (the inference server's URL) is not set"]);
  });

  it("bad remote sections are manifest problems, not served models", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-remote-bad-"));
    manifestDirs.push(dir);
    const base = openAiManifest({ url: "http://127.0.0.1:1/v1" } as TestInferenceServer);
    await fs.writeFile(path.join(dir, "both.yaml"), JSON.stringify({ ...base, name: "both", remote: { ...base.remote, urlEnv: "X_URL" } }));
    await fs.writeFile(path.join(dir, "none.yaml"), JSON.stringify({ ...base, name: "none", remote: { ...base.remote, models: {} } }));
    await fs.writeFile(path.join(dir, "local.yaml"), JSON.stringify({ ...base, name: "local", format: "onnx" }));
    const runtime = createModelRuntime({ modelsDir: BUILT_IN_MANIFESTS_DIR, manifestDirs: [dir], logger, device: "cpu" });
    opened.push(runtime);
    const problems = runtime.manifestProblems().map((problem) => `${path.basename(problem.file)}: ${problem.problems.join("; ")}`);
    expect(problems).toEqual([
      "both.yaml: remote: give exactly one of url and urlEnv",
      "local.yaml: remote: format remote and a remote section go together",
      "none.yaml: remote.models: name a model for text, image or both",
    ]);
  });
});
