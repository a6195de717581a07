import fs from "node:fs";
import path from "node:path";
import { AutoModelForImageTextToText, AutoProcessor, InterruptableStoppingCriteria, RawImage, TextStreamer } from "@huggingface/transformers";
import type { Device } from "../models/execution-provider.ts";
import type { ChatMessage, ImagePart, TokenUsage } from "./language-model-provider.ts";
import { providerError } from "./provider-error.ts";

/**
 * The vision-language families transformers.js generates with: Idefics3 and
 * SmolVLM (Flamingo's lineage: image tokens spliced into a chat template),
 * Florence-2 (an encoder-decoder driven by task prompts such as `<OCR>`) and
 * LLaVA. Each differs in how its processor takes text and images and in what
 * its answer looks like; the generation loop is the library's own.
 */
export type VisionLanguageFamily = "idefics3" | "florence2" | "llava";

const FAMILY_OF_MODEL_TYPE: Record<string, VisionLanguageFamily> = {
  idefics3: "idefics3",
  smolvlm: "idefics3",
  florence2: "florence2",
  llava: "llava",
  llava_onevision: "llava",
  llava_qwen2: "llava",
  moondream1: "llava",
};

/** Florence-2 answers task prompts; a free question goes in as text, a caption request as its caption task. */
export const FLORENCE_CAPTION_TASK = "<MORE_DETAILED_CAPTION>";
const DEFAULT_CAPTION_PROMPT = "Describe this image.";

/** The family of a local export from its config.json, or null for a model that takes no images. */
export function visionLanguageFamilyOf(folder: string): VisionLanguageFamily | null {
  try {
    const config = JSON.parse(fs.readFileSync(path.join(folder, "config.json"), "utf8")) as { model_type?: string };
    return FAMILY_OF_MODEL_TYPE[config.model_type ?? ""] ?? null;
  } catch {
    return null;
  }
}

export type VisionGenerateRequest = {
  messages: ChatMessage[];
  maxNewTokens: number;
  temperature?: number;
  onToken?: (text: string) => void;
  signal?: AbortSignal;
};

export type VisionGenerateResult = { text: string; usage: TokenUsage; finishReason: "stop" | "length" };

/** A loaded export: its processor (tokenizer + image processor) and its model sessions. */
export class VisionLanguageModel {
  private constructor(
    readonly family: VisionLanguageFamily,
    private readonly processor: any,
    private readonly model: any,
    private readonly provider: string,
    private readonly modelName: string,
  ) {}

  static async load(options: { family: VisionLanguageFamily; model: string; device: Device; dtype: string; provider: string }): Promise<VisionLanguageModel> {
    const [processor, model] = await Promise.all([
      AutoProcessor.from_pretrained(options.model, { local_files_only: true }),
      AutoModelForImageTextToText.from_pretrained(options.model, { device: options.device, dtype: options.dtype as never, local_files_only: true }),
    ]);
    return new VisionLanguageModel(options.family, processor, model, options.provider, options.model);
  }

  /** A caption is a question without words for Idefics3 and LLaVA, and Florence-2's caption task. */
  static captionPrompt(family: VisionLanguageFamily, prompt: string | undefined): string {
    return prompt?.trim() || (family === "florence2" ? FLORENCE_CAPTION_TASK : DEFAULT_CAPTION_PROMPT);
  }

  async generate(request: VisionGenerateRequest): Promise<VisionGenerateResult> {
    const images = request.messages.flatMap((message) => (message.role === "user" && Array.isArray(message.content) ? message.content.filter((part) => part.type === "image") : []));
    if (this.family !== "idefics3" && images.length > 1) {
      throw providerError("bad_request", `local model "${this.modelName}" (${this.family}) takes one image per request, got ${images.length}`, { provider: this.provider });
    }
    const raw = await Promise.all(images.map(decodeImage));
    const { inputs, florenceTask } = await this.prepare(request.messages, raw);

    const tokenizer = this.processor.tokenizer;
    let completionTokens = 0;
    const streamer = new TextStreamer(tokenizer, {
      skip_prompt: true,
      skip_special_tokens: true,
      callback_function: (text: string) => text && request.onToken?.(text),
      token_callback_function: () => void completionTokens++,
    });
    const stop = new InterruptableStoppingCriteria();
    const onAbort = () => stop.interrupt();
    request.signal?.addEventListener("abort", onAbort, { once: true });
    const sampling = request.temperature !== undefined && request.temperature > 0;
    try {
      const output = await this.model.generate({
        ...inputs,
        max_new_tokens: request.maxNewTokens,
        do_sample: sampling,
        ...(sampling ? { temperature: request.temperature } : {}),
        streamer,
        stopping_criteria: [stop],
      });
      // A decoder-only model returns the prompt too; an encoder-decoder (Florence-2) only what it wrote.
      const promptLength: number = inputs.input_ids.dims.at(-1);
      const generated = this.model.config.is_encoder_decoder ? output : output.slice(null, [promptLength, null]);
      let text: string;
      if (florenceTask) {
        const decoded: string = this.processor.batch_decode(generated, { skip_special_tokens: false })[0];
        const answer = this.processor.post_process_generation(decoded, florenceTask, [raw[0]!.height, raw[0]!.width])[florenceTask];
        text = typeof answer === "string" ? answer.trim() : JSON.stringify(answer);
      } else {
        text = String(this.processor.batch_decode(generated, { skip_special_tokens: true })[0] ?? "").trim();
      }
      return {
        text,
        finishReason: completionTokens >= request.maxNewTokens ? "length" : "stop",
        usage: { promptTokens: promptLength, completionTokens, totalTokens: promptLength + completionTokens },
      };
    } finally {
      request.signal?.removeEventListener("abort", onAbort);
    }
  }

  async dispose() {
    await this.model.dispose?.();
  }

  /** The processor's inputs: each family takes its text and images its own way. */
  private async prepare(messages: ChatMessage[], images: RawImage[]): Promise<{ inputs: any; florenceTask?: string }> {
    switch (this.family) {
      case "idefics3": {
        const prompt: string = this.processor.apply_chat_template(messages.map(toTemplateMessage), { add_generation_prompt: true });
        // Without an image Idefics3's processor has nothing to expand: the tokenizer alone reads the prompt.
        return { inputs: images.length ? await this.processor(prompt, images) : this.processor.tokenizer(prompt) };
      }
      case "llava": {
        if (!images.length) throw providerError("bad_request", `local model "${this.modelName}" (llava) needs an image`, { provider: this.provider });
        const prompt: string = this.processor.tokenizer.chat_template
          ? this.processor.apply_chat_template(messages.map(toTemplateMessage), { add_generation_prompt: true })
          : `USER: <image>\n${plainText(messages)} ASSISTANT:`;
        return { inputs: await this.processor(images[0], prompt) };
      }
      case "florence2": {
        if (!images.length) throw providerError("bad_request", `local model "${this.modelName}" (florence2) needs an image`, { provider: this.provider });
        // The request's own words (the last text), not the labels attachments carry: `<OCR>` must lead the prompt.
        const prompt = lastUserText(messages) || FLORENCE_CAPTION_TASK;
        const task = /^<[A-Z_]+>/.exec(prompt)?.[0];
        return { inputs: await this.processor(images[0], prompt), florenceTask: task && this.processor.tasks_answer_post_processing_type.has(task) ? task : undefined };
      }
    }
  }
}

async function decodeImage(part: ImagePart): Promise<RawImage> {
  return RawImage.fromBlob(new Blob([new Uint8Array(part.data)], { type: part.mimeType }));
}

/** Chat messages in the content-list form vision chat templates read: an image part marks where its image tokens go. */
function toTemplateMessage(message: ChatMessage) {
  if (typeof message.content === "string" || message.content === null) {
    return { role: message.role, content: [{ type: "text", text: message.content ?? "" }] };
  }
  return { role: message.role, content: message.content.map((part) => (part.type === "text" ? { type: "text", text: part.text } : { type: "image" })) };
}

function lastUserText(messages: ChatMessage[]): string {
  const last = messages.findLast((message) => message.role === "user");
  if (!last) return "";
  if (typeof last.content === "string") return last.content.trim();
  return last.content.findLast((part) => part.type === "text")?.text.trim() ?? "";
}

/** The words of the conversation, for models that take a single prompt (Florence-2's task prompts, LLaVA without a template). */
function plainText(messages: ChatMessage[]): string {
  return messages
    .flatMap((message) => (typeof message.content === "string" ? [message.content] : (message.content ?? []).flatMap((part) => (part.type === "text" ? [part.text] : []))))
    .map((text) => text.trim())
    .filter(Boolean)
    .join("\n");
}
