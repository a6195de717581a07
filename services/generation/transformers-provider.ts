import fs from "node:fs";
import path from "node:path";
import { env, pipeline, RawImage, TextStreamer } from "@huggingface/transformers";
import type { Logger } from "../core/logger.ts";
import { chooseExecutionProvider, type Device } from "../models/execution-provider.ts";
import type {
  CaptionRequest,
  ChatMessage,
  ChatRequest,
  ChatResult,
  LanguageModelProvider,
  SpeechRequest,
  SpeechResult,
  TextResult,
  TranscribeRequest,
} from "./language-model-provider.ts";
import { providerError } from "./provider-error.ts";
import { visionLanguageFamilyOf, VisionLanguageModel } from "./transformers-vlm.ts";
import { encodeWav } from "./wav-file.ts";

type Task = "text-generation" | "image-to-text" | "automatic-speech-recognition" | "text-to-speech";

export type TransformersProviderOptions = {
  name: string;
  /** Hugging Face ONNX exports live in `<modelsDir>/<model>/` (config.json, tokenizer files, onnx/). */
  modelsDir: string;
  /** "cuda" falls back to the CPU when onnxruntime's CUDA libraries are missing, as the worker's encoders do. */
  device: Device;
  dtype: string;
  logger: Logger;
};

const DEFAULT_MAX_NEW_TOKENS = 256;

/**
 * Local generation with transformers.js on onnxruntime-node, from MODELS_DIR
 * only: text generation (any causal LM export), image-to-text captioning,
 * vision-language chat and captioning (transformers-vlm.ts), Whisper
 * transcription and text-to-speech (VITS/MMS-style exports).
 * Nothing is ever fetched from a model hub.
 */
export class TransformersProvider implements LanguageModelProvider {
  readonly name: string;
  private readonly pipelines = new Map<string, Promise<any>>();
  private readonly visionModels = new Map<string, Promise<VisionLanguageModel>>();
  private readonly device: Device;

  constructor(private readonly options: TransformersProviderOptions) {
    this.name = options.name;
    this.device = chooseExecutionProvider(options.device, options.logger).device;
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = `${path.resolve(options.modelsDir)}/`;
  }

  async chat(request: ChatRequest): Promise<ChatResult> {
    if (request.tools?.length) {
      throw providerError("unsupported", `local model "${request.model}" does not take tools; use an OpenAI-compatible server for agents`, {
        provider: this.name,
      });
    }
    const hasImages = request.messages.some((message) => message.role === "user" && Array.isArray(message.content) && message.content.some((part) => part.type === "image"));
    if (hasImages || this.isVisionLanguage(request.model)) {
      const model = await this.loadVision(request.model);
      return { ...(await model.generate({ ...request, maxNewTokens: request.maxTokens ?? DEFAULT_MAX_NEW_TOKENS })), toolCalls: [] };
    }
    const generator = await this.load("text-generation", request.model);
    const tokenizer = generator.tokenizer;
    const prompt: string = tokenizer.chat_template
      ? tokenizer.apply_chat_template(request.messages.map(toTemplateMessage), { tokenize: false, add_generation_prompt: true })
      : plainPrompt(request.messages);
    const promptTokens = tokenizer.encode(prompt).length;
    let completionTokens = 0;
    const streamer = new TextStreamer(tokenizer, {
      skip_prompt: true,
      callback_function: (text: string) => text && request.onToken?.(text),
      token_callback_function: () => void completionTokens++,
    });
    const maxNewTokens = request.maxTokens ?? DEFAULT_MAX_NEW_TOKENS;
    const sampling = request.temperature !== undefined && request.temperature > 0;
    const [output] = await generator(prompt, {
      max_new_tokens: maxNewTokens,
      do_sample: sampling,
      ...(sampling ? { temperature: request.temperature } : {}),
      return_full_text: false,
      streamer,
    });
    return {
      text: output.generated_text,
      toolCalls: [],
      finishReason: completionTokens >= maxNewTokens ? "length" : "stop",
      usage: { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens },
    };
  }

  async caption(request: CaptionRequest): Promise<TextResult> {
    if (this.isVisionLanguage(request.model)) {
      const model = await this.loadVision(request.model);
      const prompt = VisionLanguageModel.captionPrompt(model.family, request.prompt);
      const { text, usage } = await model.generate({
        messages: [{ role: "user", content: [request.image, { type: "text", text: prompt }] }],
        maxNewTokens: DEFAULT_MAX_NEW_TOKENS,
        onToken: request.onToken,
        signal: request.signal,
      });
      return { text, usage };
    }
    const captioner = await this.load("image-to-text", request.model);
    const image = await RawImage.fromBlob(new Blob([new Uint8Array(request.image.data)], { type: request.image.mimeType }));
    const [output] = await captioner(image, { max_new_tokens: 64 });
    const text = String(output.generated_text ?? "").trim();
    request.onToken?.(text);
    return { text };
  }

  async transcribe(request: TranscribeRequest): Promise<TextResult> {
    const recognizer = await this.load("automatic-speech-recognition", request.model);
    const output = await recognizer(request.audio.samples, {
      chunk_length_s: 30,
      stride_length_s: 5,
      ...(request.language ? { language: request.language, task: "transcribe" } : {}),
    });
    return { text: String(output.text ?? "").trim() };
  }

  async speak(request: SpeechRequest): Promise<SpeechResult> {
    const synthesizer = await this.load("text-to-speech", request.model);
    const output = await synthesizer(request.text);
    const samples: Float32Array = output.data; // RawAudio joins its chunks
    return { bytes: encodeWav(samples, output.sampling_rate), mimeType: "audio/wav", durationSec: samples.length / output.sampling_rate };
  }

  async close() {
    for (const loading of this.pipelines.values()) await loading.then((p) => p.dispose?.()).catch(() => {});
    this.pipelines.clear();
    for (const loading of this.visionModels.values()) await loading.then((model) => model.dispose()).catch(() => {});
    this.visionModels.clear();
  }

  private isVisionLanguage(model: string): boolean {
    if (this.visionModels.has(model)) return true;
    return !model.includes("..") && visionLanguageFamilyOf(path.join(this.options.modelsDir, model)) !== null;
  }

  /** A vision-language export (Idefics3/SmolVLM, Florence-2, LLaVA), loaded once; a text-only model cannot take images. */
  private loadVision(model: string): Promise<VisionLanguageModel> {
    let loading = this.visionModels.get(model);
    if (!loading) {
      this.checkFolder(model);
      const family = visionLanguageFamilyOf(path.join(this.options.modelsDir, model));
      if (!family) {
        throw providerError("unsupported", `local model "${model}" is not a vision-language model (Idefics3/SmolVLM, Florence-2 or LLaVA export) and takes no images`, {
          provider: this.name,
        });
      }
      loading = VisionLanguageModel.load({ family, model, device: this.device, dtype: this.options.dtype, provider: this.name });
      loading.catch(() => this.visionModels.delete(model));
      this.visionModels.set(model, loading);
    }
    return loading;
  }

  /** A missing folder is MODEL_NOT_FOUND, not a hub download. */
  private checkFolder(model: string) {
    const folder = path.join(this.options.modelsDir, model);
    if (model.includes("..") || !fs.existsSync(path.join(folder, "config.json"))) {
      throw providerError("not_found", `no local model "${model}" in MODELS_DIR (expected ${folder}/config.json); put a transformers.js export (config.json, tokenizer files, onnx/) there`, {
        provider: this.name,
      });
    }
  }

  /** One pipeline per task and model, loaded once; a missing folder is MODEL_NOT_FOUND, not a hub download. */
  private load(task: Task, model: string): Promise<any> {
    const key = `${task}:${model}`;
    let loading = this.pipelines.get(key);
    if (!loading) {
      this.checkFolder(model);
      loading = pipeline(task, model, { device: this.device, dtype: this.options.dtype as never, local_files_only: true });
      loading.catch(() => this.pipelines.delete(key));
      this.pipelines.set(key, loading);
    }
    return loading;
  }
}

function toTemplateMessage(message: ChatMessage) {
  if (message.role === "tool") return { role: "tool", content: message.content };
  if (typeof message.content === "string" || message.content === null) return { role: message.role, content: message.content ?? "" };
  return { role: message.role, content: message.content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("\n") };
}

/** A model without a chat template continues plain text: the system text, then the user's. */
function plainPrompt(messages: ChatMessage[]): string {
  return messages
    .map((message) => toTemplateMessage(message).content)
    .filter((content) => content.length > 0)
    .join("\n");
}
