import OpenAI, { toFile } from "openai";
import type {
  ChatCompletionChunk,
  ChatCompletionContentPart,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from "openai/resources/chat/completions";
import type {
  CaptionRequest,
  ChatMessage,
  ChatRequest,
  ChatResult,
  EmbedRequest,
  EmbedResult,
  ImageRequest,
  ImageResult,
  LanguageModelProvider,
  TextResult,
  TokenUsage,
  ToolCall,
  TranscribeRequest,
} from "./language-model-provider.ts";
import { zeroUsage } from "./language-model-provider.ts";
import { providerError, type ProviderErrorClass } from "./provider-error.ts";

export type OpenAICompatibleOptions = {
  name: string;
  baseUrl: string;
  /** Local servers (vLLM, Ollama, llama.cpp) take any key. Never logged. */
  apiKey?: string;
  headers?: Record<string, string>;
};

const DEFAULT_CAPTION_PROMPT = "Describe this image in one or two sentences.";

/**
 * Any server that speaks OpenAI's wire protocol: OpenAI itself, vLLM, Ollama,
 * llama.cpp's server, LiteLLM. Retries and timeouts belong to the router, so
 * the SDK's own retries are off.
 */
export class OpenAICompatibleProvider implements LanguageModelProvider {
  readonly name: string;
  private readonly client: OpenAI;

  constructor(options: OpenAICompatibleOptions) {
    this.name = options.name;
    this.client = new OpenAI({
      baseURL: options.baseUrl,
      apiKey: options.apiKey || "unused",
      defaultHeaders: options.headers,
      maxRetries: 0,
      timeout: 10 * 60_000,
    });
  }

  async chat(request: ChatRequest): Promise<ChatResult> {
    const body = {
      model: request.model,
      messages: request.messages.map(toWireMessage),
      ...(request.tools?.length ? { tools: request.tools.map(toWireTool) } : {}),
      ...(request.maxTokens ? { max_tokens: request.maxTokens } : {}),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    };
    try {
      if (!request.onToken) {
        const completion = await this.client.chat.completions.create({ ...body, stream: false }, { signal: request.signal });
        const choice = completion.choices[0];
        if (!choice) throw providerError("server", "the provider returned no choices", { provider: this.name });
        const toolCalls = (choice.message.tool_calls ?? []).flatMap((call) =>
          call.type === "function" ? [{ id: call.id, name: call.function.name, arguments: call.function.arguments }] : [],
        );
        return {
          text: choice.message.content ?? "",
          toolCalls,
          finishReason: choice.finish_reason ?? "stop",
          usage: toUsage(completion.usage),
        };
      }
      const stream = await this.client.chat.completions.create(
        { ...body, stream: true, stream_options: { include_usage: true } },
        { signal: request.signal },
      );
      return await collectStream(stream, request.onToken);
    } catch (error) {
      throw this.translate(error);
    }
  }

  async embed(request: EmbedRequest): Promise<EmbedResult> {
    try {
      const response = await this.client.embeddings.create(
        // Plain floats: some compatible servers ignore the SDK's default base64 encoding.
        { model: request.model, input: request.input, encoding_format: "float" },
        { signal: request.signal },
      );
      const vectors = [...response.data].sort((a, b) => a.index - b.index).map((item) => item.embedding);
      const promptTokens = response.usage?.prompt_tokens ?? 0;
      return { vectors, usage: { promptTokens, completionTokens: 0, totalTokens: response.usage?.total_tokens ?? promptTokens } };
    } catch (error) {
      throw this.translate(error);
    }
  }

  async generateImage(request: ImageRequest): Promise<ImageResult> {
    try {
      const response = await this.client.images.generate(
        { model: request.model, prompt: request.prompt, n: 1, response_format: "b64_json", ...(request.size ? { size: request.size as never } : {}) },
        { signal: request.signal },
      );
      const image = response.data?.[0];
      if (!image?.b64_json) throw providerError("server", "the images endpoint returned no image data", { provider: this.name });
      const usage = response.usage
        ? { promptTokens: response.usage.input_tokens, completionTokens: response.usage.output_tokens, totalTokens: response.usage.total_tokens }
        : undefined;
      return { bytes: Buffer.from(image.b64_json, "base64"), mimeType: "image/png", usage, revisedPrompt: image.revised_prompt };
    } catch (error) {
      throw this.translate(error);
    }
  }

  /** A vision chat model describes the image. */
  async caption(request: CaptionRequest): Promise<TextResult> {
    const result = await this.chat({
      model: request.model,
      signal: request.signal,
      onToken: request.onToken,
      messages: [{ role: "user", content: [{ type: "text", text: request.prompt ?? DEFAULT_CAPTION_PROMPT }, request.image] }],
    });
    return { text: result.text.trim(), usage: result.usage };
  }

  async transcribe(request: TranscribeRequest): Promise<TextResult> {
    try {
      const file = await toFile(request.audio.wav, "audio.wav", { type: "audio/wav" });
      const response = await this.client.audio.transcriptions.create(
        { model: request.model, file, ...(request.language ? { language: request.language } : {}) },
        { signal: request.signal },
      );
      return { text: response.text.trim() };
    } catch (error) {
      throw this.translate(error);
    }
  }

  /** SDK errors become provider errors with a class; the key is never in them. */
  private translate(error: unknown): unknown {
    if (!(error instanceof OpenAI.APIError)) return error;
    const status = error.status;
    const details = { provider: this.name, ...(status ? { status } : {}), retryAfterMs: retryAfterMs(error.headers) };
    const errorClass = classify(error);
    const reason = error.message.replace(/\s+/g, " ").slice(0, 300);
    return providerError(errorClass, `${this.name}: ${reason}`, details);
  }
}

function classify(error: InstanceType<typeof OpenAI.APIError>): ProviderErrorClass {
  if (error instanceof OpenAI.APIConnectionTimeoutError) return "timeout";
  if (error instanceof OpenAI.APIUserAbortError) return "timeout";
  if (error instanceof OpenAI.APIConnectionError) return "connection";
  if (error instanceof OpenAI.RateLimitError) return "rate_limit";
  if (error instanceof OpenAI.AuthenticationError || error instanceof OpenAI.PermissionDeniedError) return "auth";
  if (error instanceof OpenAI.NotFoundError) return "not_found";
  if (error.status !== undefined && error.status >= 500) return "server";
  return "bad_request";
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get("retry-after-ms"));
  if (Number.isFinite(ms) && ms > 0) return ms;
  const seconds = Number(headers?.get("retry-after"));
  if (Number.isFinite(seconds) && seconds > 0) return seconds * 1000;
  return undefined;
}

function toUsage(usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null | undefined): TokenUsage {
  if (!usage) return zeroUsage();
  return { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, totalTokens: usage.total_tokens };
}

/** Joins streamed deltas: text pieces, and tool calls whose arguments arrive in fragments by index. */
async function collectStream(stream: AsyncIterable<ChatCompletionChunk>, onToken: (token: string) => void): Promise<ChatResult> {
  let text = "";
  let finishReason = "stop";
  let usage = zeroUsage();
  const calls = new Map<number, ToolCall>();
  for await (const chunk of stream) {
    if (chunk.usage) usage = toUsage(chunk.usage);
    const choice = chunk.choices[0];
    if (!choice) continue;
    const delta = choice.delta;
    if (delta?.content) {
      text += delta.content;
      onToken(delta.content);
    }
    for (const part of delta?.tool_calls ?? []) {
      const call = calls.get(part.index) ?? { id: "", name: "", arguments: "" };
      if (part.id) call.id = part.id;
      if (part.function?.name) call.name += part.function.name;
      if (part.function?.arguments) call.arguments += part.function.arguments;
      calls.set(part.index, call);
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  const toolCalls = [...calls.entries()].sort(([a], [b]) => a - b).map(([index, call]) => ({ ...call, id: call.id || `call_${index}` }));
  return { text, toolCalls, finishReason, usage };
}

function toWireMessage(message: ChatMessage): ChatCompletionMessageParam {
  switch (message.role) {
    case "system":
      return { role: "system", content: message.content };
    case "user":
      return {
        role: "user",
        content:
          typeof message.content === "string"
            ? message.content
            : message.content.map(
                (part): ChatCompletionContentPart =>
                  part.type === "text"
                    ? { type: "text", text: part.text }
                    : { type: "image_url", image_url: { url: `data:${part.mimeType};base64,${part.data.toString("base64")}` } },
              ),
      };
    case "assistant":
      return {
        role: "assistant",
        content: message.content,
        ...(message.toolCalls?.length
          ? {
              tool_calls: message.toolCalls.map((call) => ({
                id: call.id,
                type: "function" as const,
                function: { name: call.name, arguments: call.arguments },
              })),
            }
          : {}),
      };
    case "tool":
      return { role: "tool", tool_call_id: message.toolCallId, content: message.content };
  }
}

function toWireTool(tool: { name: string; description: string; parameters: Record<string, unknown> }): ChatCompletionTool {
  return { type: "function", function: { name: tool.name, description: tool.description, parameters: tool.parameters } };
}
