import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGenerationConfig } from "../../services/generation/generation-config.ts";
import type { ImagePart } from "../../services/generation/language-model-provider.ts";
import { ModelRouter } from "../../services/generation/model-router.ts";
import { UsageMeter } from "../../services/generation/usage-meter.ts";
import { buildTinyCausalLm } from "../support/fixture-models/tiny-causal-lm/build-tiny-causal-lm.ts";
import { buildTinySmolVlm } from "../support/fixture-models/tiny-smolvlm/build-tiny-smolvlm.ts";
import { buildTinyLlava } from "../support/fixture-models/tiny-llava/build-tiny-llava.ts";
import { buildTinyFlorence2 } from "../support/fixture-models/tiny-florence2/build-tiny-florence2.ts";
import { modelWarnings } from "../../workflows/engine/model-warnings.ts";

let modelsDir: string;
let router: ModelRouter;

beforeAll(async () => {
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-local-vlm-"));
  await buildTinySmolVlm(modelsDir);
  await buildTinyCausalLm(modelsDir);
  await buildTinyFlorence2(modelsDir);
  await buildTinyLlava(modelsDir);
  const config = loadGenerationConfig({
    MODEL_ALIAS_LLAVA_LOCAL: "local:tiny-llava",
    MODEL_ALIAS_OCR_LOCAL: "local:tiny-florence2",
    MODEL_ALIAS_LLM_VISION: "local:tiny-smolvlm",
    MODEL_ALIAS_LLM_TEXT: "local:tiny-causal-lm",
    MODEL_ALIAS_VISION_MISSING: "local:no-such-vlm",
  });
  router = new ModelRouter(config, { modelsDir, logger: pino({ level: "silent" }) });
});

afterAll(async () => {
  await router?.close();
  await fs.rm(modelsDir, { recursive: true, force: true });
});

async function picture(background: string): Promise<ImagePart> {
  return { type: "image", mimeType: "image/png", data: await sharp({ create: { width: 20, height: 14, channels: 3, background } }).png().toBuffer() };
}

const ask = async (image: ImagePart, question: string, maxTokens = 12) =>
  router.chat("llm.vision", { messages: [{ role: "user", content: [image, { type: "text", text: question }] }], maxTokens }, { usage: new UsageMeter() });

describe("local vision-language models (transformers.js, Idefics3/SmolVLM export)", () => {
  it("runs the image through the vision encoder and the real generation loop: the picture decides the answer", async () => {
    const pieces: string[] = [];
    const usage = new UsageMeter();
    const red = await router.chat(
      "llm.vision",
      { messages: [{ role: "user", content: [await picture("#e00"), { type: "text", text: "What colour is this?" }] }], maxTokens: 20, onToken: (piece) => pieces.push(piece) },
      { usage },
    );
    const blue = await ask(await picture("#00d"), "What colour is this?", 20);
    const green = await ask(await picture("#0c0"), "What colour is this?", 20);
    // The fixture's weights: the dominant channel picks the first letter, then the alphabet runs on until "z" or the token limit.
    expect(red.text).toMatch(/^r/);
    expect(blue.text).toMatch(/^b/);
    expect(green.text).toMatch(/^g/);
    expect(new Set([red.text, blue.text, green.text]).size).toBe(3);
    expect(red.finishReason).toBe("stop"); // "z" is followed by the end of the utterance
    expect(pieces.join("")).toBe(red.text); // streamed (TextStreamer hands on whole words)
    // The prompt holds the chat template and the image's tokens; each new letter is one token.
    expect(usage.total.completionTokens).toBe(red.text.length + 1);
    expect(usage.total.promptTokens).toBeGreaterThan("What colour is this?".length);
  });

  it("captions through the same model, with or without an instruction", async () => {
    const image = await picture("#0c0");
    const plain = await router.caption("llm.vision", { image });
    const instructed = await router.caption("llm.vision", { image, prompt: "Name the colour." });
    expect(plain.text).toMatch(/^g/);
    expect(instructed.text).toBe(plain.text);
    expect(plain.usage?.completionTokens).toBeGreaterThan(0);
  });

  it("refuses an image for a text-only export with a typed error, and still chats with it without one", async () => {
    const error = await router
      .chat("llm.text", { messages: [{ role: "user", content: [await picture("#e00"), { type: "text", text: "abc" }] }] })
      .catch((e) => e);
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.details.errorClass).toBe("unsupported");
    expect(error.message).toMatch(/not a vision-language model/);
    expect((await router.chat("llm.text", { messages: [{ role: "user", content: "abc" }], maxTokens: 3 })).text).toBe("def");
  });

  it("reports a missing export as MODEL_NOT_FOUND with how to install one", async () => {
    const missing = await router.caption("vision.missing", { image: await picture("#e00") }).catch((e) => e);
    expect(missing.code).toBe("MODEL_NOT_FOUND");
    expect(missing.message).toMatch(/no-such-vlm.*MODELS_DIR.*config\.json.*onnx/);
    const unconfigured = await router.chat("llm.vision2", { messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect(unconfigured.code).toBe("MODEL_NOT_FOUND");
    expect(unconfigured.message).toMatch(/MODEL_ALIAS_LLM_VISION2=<provider>:<model>/);
  });
});

describe("local Florence-2 export (encoder-decoder, task prompts)", () => {
  it("runs <OCR> through the vision encoder, the text encoder and the decoder's cached loop; the image decides the text", async () => {
    const red = await router.caption("ocr.local", { image: await picture("#e00"), prompt: "<OCR>" });
    const blue = await router.caption("ocr.local", { image: await picture("#00d"), prompt: "<OCR>" });
    // The fixture: the dominant colour picks the first letter; Florence2Processor's post-processing strips <s> and </s>.
    expect(red.text).toMatch(/^r[s-z]+$/);
    expect(blue.text).toMatch(/^b[c-z]+$/);
    // The processor expanded the task token into the export's own prompt for it (one byte-level token per character here).
    expect(red.usage?.promptTokens).toBe("What is the text in the image?".length);
    expect(red.usage?.completionTokens).toBe(red.text.length + 1);
  });

  it("captions with its detailed-caption task by default and answers region tasks as JSON", async () => {
    const image = await picture("#0c0");
    const caption = await router.caption("ocr.local", { image });
    expect(caption.text).toMatch(/^g/);
    expect(caption.usage?.promptTokens).toBe("Describe with a paragraph what is shown in the image.".length);
    const regions = await router.caption("ocr.local", { image, prompt: "<OD>" });
    expect(JSON.parse(regions.text)).toEqual({ labels: [], bboxes: [] }); // the tiny vocabulary has no <loc_*> tokens
  });

  it("takes one image per request: two are a typed error", async () => {
    const error = await router
      .chat("ocr.local", { messages: [{ role: "user", content: [await picture("#e00"), await picture("#00d"), { type: "text", text: "<OCR>" }] }] })
      .catch((e) => e);
    expect(error.code).toBe("PROVIDER_ERROR");
    expect(error.details.errorClass).toBe("bad_request");
  });
});

describe("local LLaVA export", () => {
  it("expands <image> into one token per patch, runs the vision encoder and the cached decoder; the picture decides the answer", async () => {
    const usage = new UsageMeter();
    const ask = async (background: string) =>
      router.chat("llava.local", { messages: [{ role: "user", content: [await picture(background), { type: "text", text: "What colour?" }] }], maxTokens: 30 }, { usage });
    const red = await ask("#e00");
    const green = await ask("#0c0");
    expect(red.text).toMatch(/^r[s-z]+$/);
    expect(green.text).toMatch(/^g[h-z]+$/);
    expect(red.finishReason).toBe("stop");
    // "USER: <image>\nWhat colour? ASSISTANT: " with <image> replaced by the 2x2 patches' four tokens.
    expect(usage.calls[0]!.promptTokens).toBe("USER: \nWhat colour? ASSISTANT: ".length + 4);
  });

  it("needs an image: a question without one is a typed error", async () => {
    const error = await router.chat("llava.local", { messages: [{ role: "user", content: "What colour?" }] }).catch((e) => e);
    expect(error.code).toBe("PROVIDER_ERROR");
    expect(error.details.errorClass).toBe("bad_request");
  });
});

describe("publishing a generate.vqa step", () => {
  const definition = { steps: [{ id: "ask", uses: "generate.vqa", with: { asset: "${{ inputs.image }}", question: "What does the sign say?" } }] } as never;
  const app = { models: { list: () => [] } };

  it("warns when llm.vision, the step's default model, is not configured, and says how to configure it", () => {
    const [warning, ...rest] = modelWarnings(app, definition, {});
    expect(rest).toEqual([]);
    expect(warning).toMatch(/step "ask" \(generate\.vqa\) needs model alias "llm\.vision".*MODEL_ALIAS_LLM_VISION=<provider>:<model>/);
    expect(modelWarnings(app, definition, { MODEL_ALIAS_LLM_VISION: "local:tiny-smolvlm" })).toEqual([]);
  });
});
