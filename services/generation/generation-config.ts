import fs from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { providerErrorClasses } from "./provider-error.ts";

/**
 * Which providers exist and what each model alias (`llm.default`,
 * `llm.vision`, `speech.default`, ...) means. Read from the YAML or JSON file
 * named by PROVIDERS_FILE, then overridden by environment variables:
 *
 *   OPENAI_BASE_URL, OPENAI_API_KEY     the `openai` provider (any OpenAI-compatible server)
 *   PROVIDER_<NAME>_BASE_URL, PROVIDER_<NAME>_API_KEY
 *   MODEL_ALIAS_<ALIAS>=<provider>:<model>   e.g. MODEL_ALIAS_LLM_DEFAULT=openai:gpt-4o-mini sets `llm.default`
 *
 * Keys belong in the environment (a file can name the variable with
 * `apiKeyEnv`); they are never logged.
 */

const ProviderSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("openai-compatible"),
    baseUrl: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }),
    apiKey: z.string().optional(),
    /** The environment variable that holds the key. */
    apiKeyEnv: z.string().optional(),
    headers: z.record(z.string(), z.string()).optional(),
  }),
  z.object({
    kind: z.literal("transformers"),
    /** onnxruntime execution provider. */
    device: z.enum(["cpu", "cuda"]).default("cpu"),
    dtype: z.enum(["fp32", "fp16", "q8", "int8", "uint8", "q4", "bnb4", "q4f16"]).default("fp32"),
  }),
  z.object({ kind: z.literal("espeak-ng"), binary: z.string().default("espeak-ng") }),
  /** CMU pocketsphinx (Debian's pocketsphinx-en-us): offline speech to text. */
  z.object({ kind: z.literal("pocketsphinx"), modelDir: z.string().optional() }),
]);

const AliasSchema = z.object({
  provider: z.string().min(1),
  model: z.string().min(1),
  /** Other aliases to try, in order, when this one fails with one of `fallbackOn`. */
  fallbacks: z.array(z.string()).default([]),
  fallbackOn: z.array(z.enum(providerErrorClasses)).default(["rate_limit", "server", "connection", "timeout"]),
  /** Further tries of the same model on a retryable error, with exponential backoff. */
  retries: z.number().int().min(0).max(10).default(2),
  backoffMs: z.number().int().min(0).max(60_000).default(500),
  /** Per try. */
  timeoutMs: z.number().int().positive().max(3_600_000).default(120_000),
  maxTokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).optional(),
  /** Speech: the voice (espeak-ng: a language such as `en-us`). */
  voice: z.string().optional(),
});

const GenerationConfigSchema = z
  .object({
    providers: z.record(z.string(), ProviderSchema).default({}),
    models: z.record(z.string(), AliasSchema).default({}),
  })
  .superRefine((config, context) => {
    for (const [alias, spec] of Object.entries(config.models)) {
      if (!config.providers[spec.provider]) {
        context.addIssue({ code: "custom", path: ["models", alias, "provider"], message: `unknown provider "${spec.provider}"` });
      }
      for (const fallback of spec.fallbacks) {
        if (!config.models[fallback]) {
          context.addIssue({ code: "custom", path: ["models", alias, "fallbacks"], message: `unknown alias "${fallback}"` });
        }
      }
    }
  });

export type ProviderConfig = z.infer<typeof ProviderSchema>;
export type ModelAlias = z.infer<typeof AliasSchema>;
export type GenerationConfig = z.infer<typeof GenerationConfigSchema>;

export class GenerationConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid model configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.name = "GenerationConfigError";
  }
}

/**
 * Always there, so speech in and out work offline with nothing configured: `transcribe.offline` answers
 * TRANSCRIPT when neither `transcribe.default` nor a worker's Whisper export is there.
 */
const builtIn = {
  providers: { espeak: { kind: "espeak-ng" }, local: { kind: "transformers" }, pocketsphinx: { kind: "pocketsphinx" } },
  models: {
    "speech.default": { provider: "espeak", model: "en-us" },
    "transcribe.offline": { provider: "pocketsphinx", model: "en-us", retries: 0, timeoutMs: 600_000 },
  },
};

export function loadGenerationConfig(env: NodeJS.ProcessEnv = process.env): GenerationConfig {
  const fromFile = env.PROVIDERS_FILE ? readProvidersFile(env.PROVIDERS_FILE) : {};
  const raw = {
    providers: { ...builtIn.providers, ...(fromFile.providers ?? {}) } as Record<string, Record<string, unknown>>,
    models: { ...builtIn.models, ...(fromFile.models ?? {}) } as Record<string, Record<string, unknown>>,
  };
  applyEnvironment(raw, env);
  const parsed = GenerationConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new GenerationConfigError(parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`));
  }
  return parsed.data;
}

function readProvidersFile(file: string): { providers?: Record<string, unknown>; models?: Record<string, unknown> } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    throw new GenerationConfigError([`PROVIDERS_FILE: cannot read ${file}: ${(error as Error).message}`]);
  }
  const value = parseYaml(text) ?? {}; // YAML is a superset of JSON: one parser reads both
  if (typeof value !== "object" || Array.isArray(value)) throw new GenerationConfigError([`PROVIDERS_FILE: ${file} is not a mapping`]);
  return value;
}

function applyEnvironment(raw: { providers: Record<string, Record<string, unknown>>; models: Record<string, Record<string, unknown>> }, env: NodeJS.ProcessEnv) {
  if (env.OPENAI_BASE_URL || env.OPENAI_API_KEY) {
    raw.providers.openai = {
      kind: "openai-compatible",
      baseUrl: "https://api.openai.com/v1",
      ...raw.providers.openai,
      ...(env.OPENAI_BASE_URL ? { baseUrl: env.OPENAI_BASE_URL } : {}),
      ...(env.OPENAI_API_KEY ? { apiKey: env.OPENAI_API_KEY } : {}),
    };
  }
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    const provider = /^PROVIDER_([A-Z0-9_]+)_(BASE_URL|API_KEY)$/.exec(name);
    if (provider) {
      const key = provider[1]!.toLowerCase();
      const entry = (raw.providers[key] ??= { kind: "openai-compatible" });
      entry[provider[2] === "BASE_URL" ? "baseUrl" : "apiKey"] = value;
      continue;
    }
    const model = /^MODEL_ALIAS_([A-Z0-9_]+)$/.exec(name);
    if (model) {
      const alias = model[1]!.toLowerCase().replaceAll("_", ".");
      const separator = value.indexOf(":");
      if (separator <= 0) throw new GenerationConfigError([`${name}: expected <provider>:<model>, got "${value}"`]);
      raw.models[alias] = { ...raw.models[alias], provider: value.slice(0, separator), model: value.slice(separator + 1) };
    }
  }
  for (const entry of Object.values(raw.providers)) {
    if (typeof entry.apiKeyEnv === "string" && !entry.apiKey) entry.apiKey = env[entry.apiKeyEnv];
  }
}
