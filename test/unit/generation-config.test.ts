import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { GenerationConfigError, loadGenerationConfig } from "../../services/generation/generation-config.ts";

async function providersFile(text: string) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-providers-"));
  const file = path.join(dir, "providers.yaml");
  await fs.writeFile(file, text);
  return file;
}

describe("model alias configuration", () => {
  it("reads aliases from PROVIDERS_FILE and lets the environment override them", async () => {
    const file = await providersFile(`
providers:
  vllm: { kind: openai-compatible, baseUrl: "http://gpu-box:8000/v1", apiKeyEnv: VLLM_KEY }
models:
  llm.default: { provider: vllm, model: qwen2.5-7b, fallbacks: [llm.small], fallbackOn: [rate_limit], retries: 1, timeoutMs: 5000 }
  llm.small: { provider: local, model: tiny }
`);
    const config = loadGenerationConfig({ PROVIDERS_FILE: file, VLLM_KEY: "k1", MODEL_ALIAS_LLM_SMALL: "vllm:llama3:8b", PROVIDER_VLLM_BASE_URL: "http://other:9000/v1" });
    expect(config.providers.vllm).toMatchObject({ kind: "openai-compatible", baseUrl: "http://other:9000/v1", apiKey: "k1" });
    expect(config.models["llm.default"]).toMatchObject({ provider: "vllm", model: "qwen2.5-7b", fallbacks: ["llm.small"], fallbackOn: ["rate_limit"], retries: 1, timeoutMs: 5000 });
    expect(config.models["llm.small"]).toMatchObject({ provider: "vllm", model: "llama3:8b" }); // a model name may hold a colon
    expect(config.models["speech.default"]).toMatchObject({ provider: "espeak", model: "en-us" }); // built in
  });

  it("makes an `openai` provider from OPENAI_BASE_URL and OPENAI_API_KEY", () => {
    const config = loadGenerationConfig({ OPENAI_API_KEY: "sk-x", MODEL_ALIAS_LLM_DEFAULT: "openai:gpt-4o-mini" });
    expect(config.providers.openai).toMatchObject({ baseUrl: "https://api.openai.com/v1", apiKey: "sk-x" });
    expect(config.models["llm.default"]!.model).toBe("gpt-4o-mini");
  });

  it("names every problem: unknown provider, unknown fallback, bad URL, bad error class", async () => {
    const file = await providersFile(`
providers:
  broken: { kind: openai-compatible, baseUrl: "ftp://nope" }
models:
  llm.default: { provider: nowhere, model: m, fallbacks: [llm.ghost], fallbackOn: [sunspots] }
`);
    let error: unknown;
    try {
      loadGenerationConfig({ PROVIDERS_FILE: file });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(GenerationConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/providers\.broken\.baseUrl/);
    expect(message).toMatch(/models\.llm\.default\.fallbackOn/);
  });

  it("refuses a malformed MODEL_ALIAS_ variable and an unreadable file", () => {
    expect(() => loadGenerationConfig({ MODEL_ALIAS_LLM_DEFAULT: "no-provider-here" })).toThrow(/expected <provider>:<model>/);
    expect(() => loadGenerationConfig({ PROVIDERS_FILE: "/nonexistent/providers.yaml" })).toThrow(/cannot read/);
  });
});
