import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { EspeakSpeechProvider } from "./espeak-speech-provider.ts";
import type { GenerationConfig, ModelAlias, ProviderConfig } from "./generation-config.ts";
import { aliasSetupHint } from "./model-setup-hint.ts";
import type {
  Capability,
  CaptionRequest,
  ChatRequest,
  ChatResult,
  EmbedRequest,
  EmbedResult,
  ImageRequest,
  ImageResult,
  LanguageModelProvider,
  SpeechRequest,
  SpeechResult,
  TextResult,
  TokenUsage,
  TranscribeRequest,
} from "./language-model-provider.ts";
import { OpenAICompatibleProvider } from "./openai-compatible-provider.ts";
import { errorClassOf, providerError, retryableClasses, retryAfterOf } from "./provider-error.ts";
import { PocketsphinxProvider } from "./pocketsphinx-transcriber.ts";
import { TransformersProvider } from "./transformers-provider.ts";
import type { UsageMeter } from "./usage-meter.ts";
import { generationTokens } from "../observability/metrics.ts";
import { inSpan } from "../observability/tracing.ts";

/** The request of a capability, less the model (the alias decides it). */
type Without<T> = Omit<T, "model" | "signal">;

export type RouteOptions = {
  /** Where the call's token usage is recorded. */
  usage?: UsageMeter;
  /** Cancels the whole call, fallbacks included (a job or agent deadline). */
  signal?: AbortSignal;
};

const MAX_BACKOFF_MS = 30_000;

/**
 * Turns an alias into a provider call: per try a timeout, retries with
 * exponential backoff on retryable errors (honouring Retry-After), then the
 * alias's fallbacks on the error classes it names. Usage lands in the meter.
 */
/** gen_ai.operation.name for each capability (OpenTelemetry's names where it has one). */
const GEN_AI_OPERATIONS: Partial<Record<Capability, string>> = { chat: "chat", embed: "embeddings", generateImage: "generate_content", caption: "generate_content", transcribe: "transcribe", speak: "speech" };

export class ModelRouter {
  private readonly providers = new Map<string, LanguageModelProvider>();

  constructor(
    readonly config: GenerationConfig,
    private readonly deps: { modelsDir: string; logger: Logger },
  ) {}

  hasAlias(alias: string): boolean {
    return alias in this.config.models;
  }

  /** MODEL_NOT_FOUND for an alias nobody configured. */
  alias(alias: string): ModelAlias {
    const spec = this.config.models[alias];
    if (!spec) {
      const known = Object.keys(this.config.models).sort().join(", ");
      throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, `no model alias "${alias}" is configured (known: ${known}); ${aliasSetupHint(alias)}`, { alias });
    }
    return spec;
  }

  chat(alias: string, request: Without<ChatRequest>, options: RouteOptions = {}): Promise<ChatResult> {
    // Once text has streamed to a client, another try would repeat it: no retry or fallback after that.
    let streamed = false;
    const onToken = request.onToken && ((token: string) => ((streamed = true), request.onToken!(token)));
    return this.route(alias, "chat", options, () => !streamed, (provider, spec, signal) =>
      provider.chat!({
        maxTokens: spec.maxTokens,
        temperature: spec.temperature,
        ...request,
        onToken,
        model: spec.model,
        signal,
      }),
    );
  }

  embed(alias: string, request: Without<EmbedRequest>, options: RouteOptions = {}): Promise<EmbedResult> {
    return this.route(alias, "embed", options, () => true, (provider, spec, signal) => provider.embed!({ ...request, model: spec.model, signal }));
  }

  generateImage(alias: string, request: Without<ImageRequest>, options: RouteOptions = {}): Promise<ImageResult> {
    return this.route(alias, "generateImage", options, () => true, (provider, spec, signal) =>
      provider.generateImage!({ ...request, model: spec.model, signal }),
    );
  }

  caption(alias: string, request: Without<CaptionRequest>, options: RouteOptions = {}): Promise<TextResult> {
    let streamed = false;
    const onToken = request.onToken && ((token: string) => ((streamed = true), request.onToken!(token)));
    return this.route(alias, "caption", options, () => !streamed, (provider, spec, signal) =>
      provider.caption!({ ...request, onToken, model: spec.model, signal }),
    );
  }

  transcribe(alias: string, request: Without<TranscribeRequest>, options: RouteOptions = {}): Promise<TextResult> {
    return this.route(alias, "transcribe", options, () => true, (provider, spec, signal) =>
      provider.transcribe!({ ...request, model: spec.model, signal }),
    );
  }

  speak(alias: string, request: Without<SpeechRequest>, options: RouteOptions = {}): Promise<SpeechResult> {
    return this.route(alias, "speak", options, () => true, (provider, spec, signal) =>
      provider.speak!({ voice: spec.voice, ...request, model: spec.model, signal }),
    );
  }

  async close() {
    await Promise.all([...this.providers.values()].map((provider) => provider.close?.()));
    this.providers.clear();
  }

  private provider(name: string): LanguageModelProvider {
    let provider = this.providers.get(name);
    if (!provider) {
      const config = this.config.providers[name];
      if (!config) throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, `no provider "${name}" is configured`);
      provider = createProvider(name, config, this.deps);
      this.providers.set(name, provider);
    }
    return provider;
  }

  private async route<T extends { usage?: TokenUsage }>(
    firstAlias: string,
    capability: Capability,
    options: RouteOptions,
    mayTryAgain: () => boolean,
    invoke: (provider: LanguageModelProvider, spec: ModelAlias, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const tried = new Set<string>();
    let alias = firstAlias;
    let fallbackFrom: string | undefined;
    while (true) {
      tried.add(alias);
      const spec = this.alias(alias);
      const provider = this.provider(spec.provider);
      if (typeof provider[capability] !== "function") {
        throw providerError("unsupported", `model alias "${alias}" (provider ${spec.provider}) cannot ${describe(capability)}`, {
          provider: spec.provider,
        });
      }
      try {
        const started = Date.now();
        // A span per model call with the OpenTelemetry gen_ai conventions (model, tokens in and out), never the prompt.
        const operation = GEN_AI_OPERATIONS[capability] ?? capability;
        const { result, attempts } = await inSpan(
          `${operation} ${spec.model}`,
          {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": spec.provider,
            "gen_ai.request.model": spec.model,
            "tessera.model.alias": alias,
            ...(capability === "chat" && spec.maxTokens !== undefined ? { "gen_ai.request.max_tokens": spec.maxTokens } : {}),
            ...(capability === "chat" && spec.temperature !== undefined ? { "gen_ai.request.temperature": spec.temperature } : {}),
          },
          async (span) => {
            const outcome = await this.withRetries(alias, spec, options.signal, mayTryAgain, (signal) => invoke(provider, spec, signal));
            span.setAttributes({ "tessera.attempts": outcome.attempts });
            if (outcome.result.usage) {
              span.setAttributes({ "gen_ai.usage.input_tokens": outcome.result.usage.promptTokens, "gen_ai.usage.output_tokens": outcome.result.usage.completionTokens });
              generationTokens.inc({ provider: spec.provider, model: spec.model, direction: "input" }, outcome.result.usage.promptTokens);
              generationTokens.inc({ provider: spec.provider, model: spec.model, direction: "output" }, outcome.result.usage.completionTokens);
            }
            return outcome;
          },
        );
        options.usage?.add({
          alias,
          provider: spec.provider,
          model: spec.model,
          capability,
          ...(result.usage ?? { promptTokens: 0, completionTokens: 0, totalTokens: 0 }),
          attempts,
          durationMs: Date.now() - started,
          ...(fallbackFrom ? { fallbackFrom } : {}),
        });
        return result;
      } catch (error) {
        const errorClass = errorClassOf(error);
        const next = spec.fallbacks.find((candidate) => !tried.has(candidate));
        if (!errorClass || !spec.fallbackOn.includes(errorClass) || !next || !mayTryAgain() || options.signal?.aborted) throw error;
        this.deps.logger.warn({ alias, next, errorClass }, "model call failed; falling back");
        fallbackFrom = alias;
        alias = next;
      }
    }
  }

  private async withRetries<T>(
    alias: string,
    spec: ModelAlias,
    outer: AbortSignal | undefined,
    mayTryAgain: () => boolean,
    attempt: (signal: AbortSignal) => Promise<T>,
  ): Promise<{ result: T; attempts: number }> {
    for (let attempts = 1; ; attempts++) {
      try {
        return { result: await this.withTimeout(alias, spec, outer, attempt), attempts };
      } catch (error) {
        const errorClass = errorClassOf(error);
        const retryable = errorClass !== undefined && retryableClasses.has(errorClass);
        if (!retryable || attempts > spec.retries || !mayTryAgain() || outer?.aborted) throw error;
        const delay = Math.min(MAX_BACKOFF_MS, retryAfterOf(error) ?? spec.backoffMs * 2 ** (attempts - 1));
        this.deps.logger.warn({ alias, errorClass, attempt: attempts, delayMs: delay }, "model call failed; retrying");
        await sleep(delay, undefined, outer ? { signal: outer } : undefined).catch(() => {});
      }
    }
  }

  /** Aborts the try after the alias's timeout; local providers that cannot abort are raced instead. */
  private async withTimeout<T>(alias: string, spec: ModelAlias, outer: AbortSignal | undefined, attempt: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const signal = outer ? AbortSignal.any([outer, controller.signal]) : controller.signal;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
        reject(providerError("timeout", `model alias "${alias}" did not answer within ${spec.timeoutMs} ms`, { provider: spec.provider }));
      }, spec.timeoutMs);
    });
    let onAbort: (() => void) | undefined;
    const cancelled = new Promise<never>((_, reject) => {
      onAbort = () => reject(new TesseraError(ErrorCode.CANCELLED, `the call to model alias "${alias}" was cancelled`));
      if (outer?.aborted) onAbort();
      else outer?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([attempt(signal), deadline, cancelled]);
    } catch (error) {
      if (timedOut) throw providerError("timeout", `model alias "${alias}" did not answer within ${spec.timeoutMs} ms`, { provider: spec.provider });
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort) outer?.removeEventListener("abort", onAbort);
    }
  }
}

function describe(capability: Capability): string {
  return {
    chat: "chat",
    embed: "embed text",
    generateImage: "generate images",
    caption: "caption images",
    transcribe: "transcribe audio",
    speak: "synthesize speech",
  }[capability];
}

function createProvider(name: string, config: ProviderConfig, deps: { modelsDir: string; logger: Logger }): LanguageModelProvider {
  switch (config.kind) {
    case "openai-compatible":
      return new OpenAICompatibleProvider({ name, baseUrl: config.baseUrl, apiKey: config.apiKey, headers: config.headers });
    case "transformers":
      return new TransformersProvider({ name, modelsDir: deps.modelsDir, device: config.device, dtype: config.dtype, logger: deps.logger });
    case "espeak-ng":
      return new EspeakSpeechProvider({ name, binary: config.binary });
    case "pocketsphinx":
      return new PocketsphinxProvider({ name, modelDir: config.modelDir });
  }
}
