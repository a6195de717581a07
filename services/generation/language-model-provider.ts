/**
 * What a model provider can do. A provider implements the capabilities its
 * backend has (an OpenAI-compatible server: chat, embeddings, images,
 * transcription; transformers.js: local text generation, captioning, Whisper,
 * speech; espeak-ng: speech); the router calls them through model aliases.
 */

export type TextPart = { type: "text"; text: string };
/** Image bytes travel as a data URL, which every OpenAI-compatible server accepts. */
export type ImagePart = { type: "image"; mimeType: string; data: Buffer };
export type ContentPart = TextPart | ImagePart;

export type ToolCall = {
  id: string;
  name: string;
  /** The model's JSON text, parsed by the caller (models do send malformed JSON). */
  arguments: string;
};

export type ChatMessage =
  | { role: "system"; content: string }
  | { role: "user"; content: string | ContentPart[] }
  | { role: "assistant"; content: string | null; toolCalls?: ToolCall[] }
  | { role: "tool"; toolCallId: string; content: string };

export type ToolDefinition = {
  name: string;
  description: string;
  /** JSON Schema of the tool's input object. */
  parameters: Record<string, unknown>;
};

export type TokenUsage = { promptTokens: number; completionTokens: number; totalTokens: number };

/** Cancels the call; the router aborts it on timeout. */
export type CallOptions = { signal?: AbortSignal };

export type ChatRequest = CallOptions & {
  model: string;
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  maxTokens?: number;
  temperature?: number;
  /** Called with each piece of generated text as it arrives; its presence asks for streaming. */
  onToken?: (token: string) => void;
};

export type ChatResult = {
  text: string;
  toolCalls: ToolCall[];
  /** "stop", "length", "tool_calls", ... as the backend says. */
  finishReason: string;
  usage: TokenUsage;
};

export type EmbedRequest = CallOptions & { model: string; input: string[] };
export type EmbedResult = { vectors: number[][]; usage: TokenUsage };

export type ImageRequest = CallOptions & { model: string; prompt: string; size?: string };
export type GeneratedMedia = { bytes: Buffer; mimeType: string };
export type ImageResult = GeneratedMedia & { usage?: TokenUsage; revisedPrompt?: string };

export type CaptionRequest = CallOptions & { model: string; image: ImagePart; prompt?: string; onToken?: (token: string) => void };
/** 16 kHz mono PCM in [-1, 1], what Whisper-style models take. */
export type AudioClip = { samples: Float32Array; sampleRate: 16000; wav: Buffer };
export type TranscribeRequest = CallOptions & { model: string; audio: AudioClip; language?: string };
/** `words`: each recognised word with its time in the clip, where the transcriber says (pocketsphinx does). */
export type TextResult = { text: string; usage?: TokenUsage; words?: Array<{ text: string; start: number; end: number }> };

export type SpeechRequest = CallOptions & { model: string; text: string; voice?: string; speed?: number };
export type SpeechResult = GeneratedMedia & { durationSec: number; usage?: TokenUsage };

export type LanguageModelProvider = {
  readonly name: string;
  chat?(request: ChatRequest): Promise<ChatResult>;
  embed?(request: EmbedRequest): Promise<EmbedResult>;
  generateImage?(request: ImageRequest): Promise<ImageResult>;
  caption?(request: CaptionRequest): Promise<TextResult>;
  transcribe?(request: TranscribeRequest): Promise<TextResult>;
  speak?(request: SpeechRequest): Promise<SpeechResult>;
  close?(): Promise<void>;
};

export type Capability = "chat" | "embed" | "generateImage" | "caption" | "transcribe" | "speak";

export const zeroUsage = (): TokenUsage => ({ promptTokens: 0, completionTokens: 0, totalTokens: 0 });
