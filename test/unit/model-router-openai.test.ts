import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { pino } from "pino";
import { TesseraError } from "../../services/core/errors.ts";
import { loadGenerationConfig } from "../../services/generation/generation-config.ts";
import { ModelRouter } from "../../services/generation/model-router.ts";
import { UsageMeter } from "../../services/generation/usage-meter.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "../support/fake-openai-server.ts";

const SECRET = "sk-test-secret-never-logged-1234";
let fake: FakeOpenAIServer;
let backup: FakeOpenAIServer;
let router: ModelRouter;
const logLines: string[] = [];

beforeAll(async () => {
  fake = await startFakeOpenAIServer();
  backup = await startFakeOpenAIServer();
  const config = loadGenerationConfig({
    PROVIDER_FAKE_BASE_URL: fake.baseUrl,
    PROVIDER_FAKE_API_KEY: SECRET,
    PROVIDER_BACKUP_BASE_URL: backup.baseUrl,
    MODEL_ALIAS_LLM_DEFAULT: "fake:tiny-chat",
    MODEL_ALIAS_LLM_BACKUP: "backup:backup-chat",
    MODEL_ALIAS_IMAGE_DEFAULT: "fake:tiny-image",
    MODEL_ALIAS_EMBED_DEFAULT: "fake:tiny-embed",
  });
  // Tight timings so the slow and retry paths run in milliseconds.
  Object.assign(config.models["llm.default"]!, { timeoutMs: 400, retries: 2, backoffMs: 20, fallbacks: ["llm.backup"], fallbackOn: ["rate_limit", "server"] });
  Object.assign(config.models["llm.backup"]!, { timeoutMs: 2000, retries: 0 });
  // Capture every log line, to prove the key never appears in one.
  const logger = pino({ level: "debug" }, { write: (line: string) => void logLines.push(line) });
  router = new ModelRouter(config, { modelsDir: "models", logger });
});

afterAll(async () => {
  await router?.close();
  await fake?.close();
  await backup?.close();
});

afterEach(() => {
  fake.requests.length = 0;
  backup.requests.length = 0;
});

describe("OpenAI-compatible provider through the router", () => {
  it("streams chat tokens in order and records the usage the server reports", async () => {
    fake.enqueue({ kind: "chat", content: "The quick brown fox.", usage: { prompt_tokens: 12, completion_tokens: 5 } });
    const tokens: string[] = [];
    const usage = new UsageMeter();
    const result = await router.chat(
      "llm.default",
      { messages: [{ role: "user", content: "say something" }], onToken: (token) => tokens.push(token) },
      { usage },
    );
    expect(result.text).toBe("The quick brown fox.");
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.join("")).toBe(result.text);
    expect(usage.total).toEqual({ promptTokens: 12, completionTokens: 5, totalTokens: 17 });
    expect(usage.calls[0]).toMatchObject({ alias: "llm.default", provider: "fake", model: "tiny-chat", attempts: 1 });
    const sent = fake.requests[0]!;
    expect(sent.path).toBe("/v1/chat/completions");
    expect(sent.body).toMatchObject({ model: "tiny-chat", stream: true, stream_options: { include_usage: true } });
    expect(sent.headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  it("joins streamed tool-call fragments and sends tool definitions and image parts on the wire", async () => {
    fake.enqueue({ kind: "chat", toolCalls: [{ name: "search", arguments: { query: "red bicycle", limit: 3 } }] });
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#f00" } }).png().toBuffer();
    const result = await router.chat("llm.default", {
      messages: [{ role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image", mimeType: "image/png", data: png }] }],
      tools: [{ name: "search", description: "search the media", parameters: { type: "object", properties: { query: { type: "string" } } } }],
      onToken: () => {},
    });
    expect(result.finishReason).toBe("tool_calls");
    expect(result.toolCalls).toHaveLength(1);
    expect(result.toolCalls[0]!.name).toBe("search");
    expect(JSON.parse(result.toolCalls[0]!.arguments)).toEqual({ query: "red bicycle", limit: 3 });
    const body = fake.requests[0]!.body;
    expect(body.tools[0]).toMatchObject({ type: "function", function: { name: "search" } });
    expect(body.messages[0].content[1].image_url.url).toBe(`data:image/png;base64,${png.toString("base64")}`);
  });

  it("answers without streaming when nobody listens for tokens", async () => {
    fake.enqueue({ kind: "chat", content: "plain answer" });
    const result = await router.chat("llm.default", { messages: [{ role: "user", content: "hi" }] });
    expect(result.text).toBe("plain answer");
    expect(fake.requests[0]!.body.stream).toBe(false);
  });

  it("retries a 429 with backoff, honouring Retry-After, then succeeds", async () => {
    fake.enqueue({ kind: "error", status: 429, message: "slow down", headers: { "retry-after-ms": "50" } }, { kind: "chat", content: "after the wait" });
    const usage = new UsageMeter();
    const started = Date.now();
    const result = await router.chat("llm.default", { messages: [{ role: "user", content: "hi" }] }, { usage });
    expect(result.text).toBe("after the wait");
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(fake.requests).toHaveLength(2);
    expect(usage.calls[0]!.attempts).toBe(2);
  });

  it("times out a slow response with a TIMEOUT error after its retries", async () => {
    fake.enqueue({ kind: "chat", content: "too late", delayMs: 2000 }, { kind: "chat", content: "too late", delayMs: 2000 }, { kind: "chat", content: "too late", delayMs: 2000 });
    const started = Date.now();
    const error = await router.chat("llm.default", { messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect(error).toBeInstanceOf(TesseraError);
    expect(error.code).toBe("TIMEOUT");
    expect(error.details.errorClass).toBe("timeout");
    expect(error.message).toMatch(/did not answer within 400 ms/);
    // Three tries of 400 ms plus backoff, not three times the server's 2 s.
    expect(Date.now() - started).toBeLessThan(1900);
    expect(fake.requests).toHaveLength(3);
    expect(backup.requests).toHaveLength(0); // timeout is not in this alias's fallbackOn
  });

  it("falls back to another alias when the error class is one it names", async () => {
    for (let i = 0; i < 3; i++) fake.enqueue({ kind: "error", status: 503, message: "overloaded" });
    backup.enqueue({ kind: "chat", content: "from the backup", usage: { prompt_tokens: 3, completion_tokens: 2 } });
    const usage = new UsageMeter();
    const result = await router.chat("llm.default", { messages: [{ role: "user", content: "hi" }] }, { usage });
    expect(result.text).toBe("from the backup");
    expect(fake.requests).toHaveLength(3); // first try plus two retries
    expect(backup.requests[0]!.body.model).toBe("backup-chat");
    expect(usage.calls).toEqual([expect.objectContaining({ alias: "llm.backup", fallbackFrom: "llm.default", totalTokens: 5 })]);
  });

  it("does not retry or fall back on a bad request, and keeps the key out of errors and logs", async () => {
    fake.enqueue({ kind: "error", status: 400, message: "bad messages" });
    const error = await router.chat("llm.default", { messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect(error.code).toBe("PROVIDER_ERROR");
    expect(error.details).toMatchObject({ errorClass: "bad_request", status: 400, provider: "fake" });
    expect(fake.requests).toHaveLength(1);
    expect(backup.requests).toHaveLength(0);
    expect(JSON.stringify(error.toRecord())).not.toContain(SECRET);
    expect(logLines.length).toBeGreaterThan(0); // the retries above logged
    expect(logLines.join("\n")).not.toContain(SECRET);
  });

  it("does not retry after tokens have streamed: the client would see them twice", async () => {
    fake.enqueue({ kind: "chat", content: "one two three four five six", chunkDelayMs: 150 });
    const tokens: string[] = [];
    const error = await router
      .chat("llm.default", { messages: [{ role: "user", content: "hi" }], onToken: (token) => tokens.push(token) })
      .catch((e) => e);
    expect(error.code).toBe("TIMEOUT");
    expect(tokens.length).toBeGreaterThan(0);
    expect(fake.requests).toHaveLength(1);
  });

  it("makes images through the images endpoint and embeds text", async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#00f" } }).png().toBuffer();
    fake.enqueue({ kind: "image", png }, { kind: "embedding", vectors: [[1, 0], [0, 1]] });
    const image = await router.generateImage("image.default", { prompt: "a blue square" });
    expect(image.mimeType).toBe("image/png");
    expect(image.bytes.equals(png)).toBe(true);
    expect(fake.requests[0]).toMatchObject({ path: "/v1/images/generations", body: { model: "tiny-image", prompt: "a blue square", response_format: "b64_json" } });
    const embedded = await router.embed("embed.default", { input: ["a", "b"] });
    expect(embedded.vectors).toEqual([[1, 0], [0, 1]]);
  });

  it("refuses an unknown alias with MODEL_NOT_FOUND", async () => {
    const error = await router.chat("llm.nope", { messages: [] }).catch((e) => e);
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(fake.requests).toHaveLength(0);
  });
});
