import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/core/logger.ts";
import { createModelRuntime, type LocalModelRuntime } from "../../services/models/local-model-runtime.ts";
import { cosine } from "../../services/models/vector-math.ts";
import { solidImage } from "../support/fixture-models/model-fixtures.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";

/*
 * No CLIP weights exist offline, so a tiny model is written in the exact
 * layout of a Hugging Face CLIP ONNX export: the runtime runs it through
 * transformers.js' CLIP classes, the code path a real export takes.
 */
let modelsDir: string;
let runtime: LocalModelRuntime;

beforeAll(async () => {
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-clip-"));
  await writeTinyClipExport(path.join(modelsDir, "clip"), { imageSize: 32, dimensions: 16 });
  // A second export under another folder name: picked up by the clip manifest's discovery.
  await writeTinyClipExport(path.join(modelsDir, "Emoji-CLIP"), { imageSize: 48, dimensions: 8, seed: 99 });
  runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["clip", "emoji-clip", "use-lite-sentence"] });
});

afterAll(async () => {
  await runtime.close();
  await fs.rm(modelsDir, { recursive: true, force: true });
});

describe("a standard CLIP export in MODELS_DIR", () => {
  it("is served by the clip manifest, with its dimensions from config.json, and so is any other CLIP export folder", () => {
    const models = runtime.list();
    expect(models.find((model) => model.name === "clip")).toEqual({
      name: "clip",
      modality: "IMAGE",
      task: "embed",
      dimensions: 16,
      device: "cpu",
      space: "image-text",
    });
    expect(models.find((model) => model.name === "emoji-clip")).toMatchObject({ dimensions: 8, space: "image-text" });
    expect(runtime.spacesFor("TEXT").sort()).toEqual(["image-text", "sentence"]);
    expect(runtime.spacesFor("IMAGE")).toEqual(["image-text"]);
  });

  it("embeds text into both the image-text and the sentence space, unit length, same text same vector", async () => {
    const spaces = await runtime.embedText(["a photo of a cat", "a red square", "a photo of a cat"]);
    expect(spaces.map((space) => space.space).sort()).toEqual(["image-text", "sentence"]);
    const imageText = spaces.find((space) => space.space === "image-text")!;
    // Both exports write image-text; the built-in manifest's folder name sorts first among equal priorities.
    expect(imageText.model).toBe("clip");
    expect(imageText.vectors.map((vector) => vector.length)).toEqual([16, 16, 16]);
    expect(Math.hypot(...imageText.vectors[0]!)).toBeCloseTo(1, 5);
    expect(Array.from(imageText.vectors[0]!)).toEqual(Array.from(imageText.vectors[2]!));
    expect(cosine(imageText.vectors[0]!, imageText.vectors[1]!)).toBeLessThan(0.99);
  });

  it("embeds images of any size through the manifest's resize, crop and normalisation", async () => {
    const red = solidImage(64, 40, [220, 20, 20]);
    const blue = solidImage(30, 90, [20, 20, 220]);
    const [space] = await runtime.embedImages([red, blue, solidImage(128, 80, [220, 20, 20])]);
    expect(space).toMatchObject({ space: "image-text", model: "clip" });
    const [redVector, blueVector, bigRed] = space!.vectors as [Float32Array, Float32Array, Float32Array];
    expect(redVector.length).toBe(16);
    expect(cosine(redVector, bigRed)).toBeGreaterThan(0.999);
    expect(cosine(redVector, blueVector)).toBeLessThan(0.9);
  });

  it("gives the same vectors in a batch as alone, and batches concurrent calls", async () => {
    const texts = Array.from({ length: 12 }, (_, index) => `caption number ${index}`);
    const before = runtime.batchSizes("clip", "embedText").count;
    const concurrent = await Promise.all(texts.map((text) => runtime.embedText([text])));
    const sizes = runtime.batchSizes("clip", "embedText").since(before);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(12);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    const alone = (await runtime.embedText([texts[5]!])).find((space) => space.space === "image-text")!.vectors[0]!;
    const inBatch = concurrent[5]!.find((space) => space.space === "image-text")!.vectors[0]!;
    expect(cosine(alone, inBatch)).toBeGreaterThan(0.9999);
  });

  it("serves only what --models names", () => {
    const onlyClip = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["clip*"] });
    expect(onlyClip.list().map((model) => model.name)).toEqual(["clip"]);
    expect(onlyClip.spacesFor("TEXT")).toEqual(["image-text"]);
  });
});
