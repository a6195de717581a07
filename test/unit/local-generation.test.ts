import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGenerationConfig } from "../../services/generation/generation-config.ts";
import { ModelRouter } from "../../services/generation/model-router.ts";
import { UsageMeter } from "../../services/generation/usage-meter.ts";
import { readWavInfo } from "../../services/generation/wav-file.ts";
import { buildTinyCausalLm } from "../support/fixture-models/tiny-causal-lm/build-tiny-causal-lm.ts";
import sharp from "sharp";
import { buildTinyCaptioner } from "../support/fixture-models/tiny-captioner/build-tiny-captioner.ts";
import { buildTinyWhisper } from "../support/fixture-models/tiny-whisper/build-tiny-whisper.ts";
import { encodeWav } from "../../services/generation/wav-file.ts";
import { buildTinyTts, SAMPLES_PER_TOKEN, tinyTtsPitch, TINY_TTS_SAMPLE_RATE } from "../support/fixture-models/tiny-tts/build-tiny-tts.ts";

let modelsDir: string;
let router: ModelRouter;

beforeAll(async () => {
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-local-gen-"));
  await buildTinyCausalLm(modelsDir);
  await buildTinyTts(modelsDir);
  await buildTinyCaptioner(modelsDir);
  await buildTinyWhisper(modelsDir);
  const config = loadGenerationConfig({
    MODEL_ALIAS_LLM_LOCAL: "local:tiny-causal-lm",
    MODEL_ALIAS_LLM_MISSING: "local:no-such-model",
    MODEL_ALIAS_SPEECH_LOCAL: "local:tiny-tts",
    MODEL_ALIAS_CAPTION_LOCAL: "local:tiny-captioner",
    MODEL_ALIAS_TRANSCRIBE_LOCAL: "local:tiny-whisper",
  });
  router = new ModelRouter(config, { modelsDir, logger: pino({ level: "silent" }) });
});

afterAll(async () => {
  await router?.close();
  await fs.rm(modelsDir, { recursive: true, force: true });
});

describe("local text generation (transformers.js on onnxruntime-node)", () => {
  it("runs a GPT-2 style export with a KV cache through the real generation loop", async () => {
    const pieces: string[] = [];
    const usage = new UsageMeter();
    const result = await router.chat(
      "llm.local",
      { messages: [{ role: "user", content: "abc" }], maxTokens: 6, onToken: (piece) => pieces.push(piece) },
      { usage },
    );
    // The fixture's weights: each letter is followed by the next one.
    expect(result.text).toBe("defghi");
    expect(pieces.join("")).toBe("defghi");
    expect(result.finishReason).toBe("length");
    expect(usage.total).toEqual({ promptTokens: 3, completionTokens: 6, totalTokens: 9 });
  });

  it("stops at the end-of-text token and continues a spaced prompt", async () => {
    expect((await router.chat("llm.local", { messages: [{ role: "user", content: "wx" }], maxTokens: 10 })).text).toBe("yz");
    expect((await router.chat("llm.local", { messages: [{ role: "user", content: "hello wor" }], maxTokens: 3 })).text).toBe("stu");
  });

  it("reports a model missing from MODELS_DIR as MODEL_NOT_FOUND without reaching for a hub", async () => {
    const error = await router.chat("llm.missing", { messages: [{ role: "user", content: "a" }] }).catch((e) => e);
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toMatch(/no-such-model/);
  });

  it("refuses tools on a local model with a typed error", async () => {
    const error = await router
      .chat("llm.local", { messages: [{ role: "user", content: "a" }], tools: [{ name: "search", description: "", parameters: { type: "object" } }] })
      .catch((e) => e);
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.details.errorClass).toBe("unsupported");
  });

  it("cannot draw with espeak: the capability check names the alias", async () => {
    const error = await router.generateImage("speech.default", { prompt: "a cat" }).catch((e) => e);
    expect(error.message).toMatch(/speech.default.*cannot generate images/);
  });
});

describe("local captioning (vision-encoder-decoder export)", () => {
  it("reads the image through the export's image processor and encoder, then decodes a caption", async () => {
    const caption = async (colour: string) => {
      const png = await sharp({ create: { width: 20, height: 14, channels: 3, background: colour } }).png().toBuffer();
      return (await router.caption("caption.local", { image: { type: "image", mimeType: "image/png", data: png } })).text;
    };
    // The fixture starts its caption with the dominant colour's letter, then runs up the alphabet.
    expect(await caption("#f00")).toBe("rstuvwxyz");
    expect(await caption("#00f")).toBe("bcdefghijklmnopqrstuvwxyz");
    expect(await caption("#0c0")).toBe("ghijklmnopqrstuvwxyz");
  });
});

describe("local transcription (Whisper export)", () => {
  it("runs the log-mel feature extractor, the encoder and the decoder loop, and decodes the text", async () => {
    const clip = (samples: Float32Array) => ({ samples, sampleRate: 16000 as const, wav: encodeWav(samples, 16000) });
    const tone = new Float32Array(32000).map((_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / 16000));
    // The fixture hears loudness: sound is "tuvwxyz", silence "stuvwxyz".
    expect((await router.transcribe("transcribe.local", { audio: clip(tone) })).text).toBe("tuvwxyz");
    expect((await router.transcribe("transcribe.local", { audio: clip(new Float32Array(32000)) })).text).toBe("stuvwxyz");
  });
});

describe("speech with an ONNX text-to-speech export (VITS/MMS layout)", () => {
  it("runs the export through transformers.js' text-to-speech pipeline into a WAV", async () => {
    const speech = await router.speak("speech.local", { text: "ab c" });
    const info = readWavInfo(speech.bytes);
    expect(info).toMatchObject({ sampleRate: TINY_TTS_SAMPLE_RATE, channels: 1, bitsPerSample: 16 });
    expect(speech.durationSec).toBeCloseTo(0.4, 5); // four characters, 0.1 s each
    // The first tenth of a second is "a": count zero crossings to read its pitch back.
    let crossings = 0;
    for (let i = 1; i < SAMPLES_PER_TOKEN; i++) {
      const before = speech.bytes.readInt16LE(info.dataOffset + (i - 1) * 2);
      const now = speech.bytes.readInt16LE(info.dataOffset + i * 2);
      if ((before < 0 && now >= 0) || (before >= 0 && now < 0)) crossings++;
    }
    const pitch = (crossings / 2) / (SAMPLES_PER_TOKEN / TINY_TTS_SAMPLE_RATE);
    expect(Math.abs(pitch - tinyTtsPitch("a"))).toBeLessThan(15);
  });
});

describe("speech with espeak-ng", () => {
  it("speaks text into a well-formed WAV whose length fits the text", async () => {
    const short = await router.speak("speech.default", { text: "Hello." });
    const long = await router.speak("speech.default", { text: "Hello. This is a much longer sentence, spoken slowly and clearly." });
    for (const speech of [short, long]) {
      const info = readWavInfo(speech.bytes);
      expect(info).toMatchObject({ channels: 1, bitsPerSample: 16 });
      expect(speech.bytes.readUInt32LE(4)).toBe(speech.bytes.length - 8); // real RIFF size, not espeak's placeholder
      expect(info.durationSec).toBeCloseTo(speech.durationSec, 5);
    }
    expect(short.durationSec).toBeGreaterThan(0.2);
    expect(long.durationSec).toBeGreaterThan(short.durationSec * 3);
  });

  it("refuses a voice name that is not one", async () => {
    const error = await router.speak("speech.default", { text: "hi", voice: "--help; rm -rf /" }).catch((e) => e);
    expect(error.code).toBe("PROVIDER_ERROR");
    const unknown = await router.speak("speech.default", { text: "hi", voice: "xx-nonexistent" }).catch((e) => e);
    expect(unknown.code).toBe("PROVIDER_ERROR");
  });
});
