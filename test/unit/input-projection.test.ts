import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/core/logger.ts";
import { createModelRuntime } from "../../services/models/local-model-runtime.ts";
import { cosine } from "../../services/models/vector-math.ts";
import { encodeModel, FLOAT, floatTensor, node, valueInfo } from "../../training/onnx-graph.ts";
import { speak, tone } from "../support/fixture-models/model-fixtures.ts";
import { seededWeights } from "../support/fixture-models/seeded-weights.ts";

/*
 * Early fusion / input projection: a projector from the audio space into
 * the image-text space makes audio comparable with images and text there.
 */
let modelsDir: string;
const projection = seededWeights(96 * 16, 5);

beforeAll(async () => {
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-projector-"));
  // As `tessera projector train` writes it: MODELS_DIR/<name>/projector.onnx + manifest.yaml.
  await fs.mkdir(path.join(modelsDir, "audio-to-image-text"));
  await fs.writeFile(
    path.join(modelsDir, "audio-to-image-text", "projector.onnx"),
    encodeModel({
      name: "projector",
      initializer: [floatTensor("weight", [96, 16], projection)],
      node: [node("MatMul", ["embeds", "weight"], ["projected_embeds"])],
      input: [valueInfo("embeds", FLOAT, ["batch_size", 96])],
      output: [valueInfo("projected_embeds", FLOAT, ["batch_size", 16])],
    }),
  );
  await fs.writeFile(
    path.join(modelsDir, "audio-to-image-text", "manifest.yaml"),
    [
      "name: audio-to-image-text",
      "task: project",
      "modality: AUDIO",
      "format: onnx",
      "adapter: onnx-projector",
      "files: { model: audio-to-image-text/projector.onnx }",
      "inputs: { embeds: embeds }",
      "outputs: { embeds: projected_embeds }",
      "output: { space: image-text, dimensions: 16, normalize: true }",
      "projector: { from: [audio] }",
    ].join("\n"),
  );
});

afterAll(async () => {
  await fs.rm(modelsDir, { recursive: true, force: true });
});

describe("input projection through a projector model", () => {
  it("brings audio into the image-text space, as the graph computes it", async () => {
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent") });
    expect(runtime.spacesFor("AUDIO").sort()).toEqual(["audio", "image-text"]);
    const clips = [speak("project this sentence"), tone(1.5)];
    const spaces = await runtime.embedAudio(clips);
    const audio = spaces.find((space) => space.space === "audio")!;
    const projected = spaces.find((space) => space.space === "image-text")!;
    expect(projected.model).toBe("audio-to-image-text");
    expect(projected.vectors[0]!.length).toBe(16);
    // Recompute audio x W by hand: the runtime must have fed the audio vector, unchanged, to the graph.
    const expected = new Float32Array(16);
    for (let j = 0; j < 16; j++) for (let i = 0; i < 96; i++) expected[j]! += audio.vectors[0]![i]! * projection[i * 16 + j]!;
    expect(cosine(projected.vectors[0]!, expected)).toBeGreaterThan(0.9999);
    expect(Math.hypot(...projected.vectors[1]!)).toBeCloseTo(1, 5);
    await runtime.close();
  });

  it("a projector whose input space is not reached stays out of the way", async () => {
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["use-lite-sentence", "audio-to-image-text"] });
    expect(runtime.spacesFor("AUDIO")).toEqual([]);
    expect(await runtime.embedAudio([tone(1)])).toEqual([]);
  });

  it("a projector trained for another model's space is not applied", async () => {
    const manifest = path.join(modelsDir, "audio-to-image-text", "manifest.yaml");
    const original = await fs.readFile(manifest, "utf8");
    await fs.writeFile(manifest, original.replace("projector: { from: [audio] }", "projector: { from: [audio], for: some-other-clip }"));
    try {
      const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent") });
      expect(runtime.spacesFor("AUDIO")).toEqual(["audio"]);
      expect((await runtime.embedAudio([tone(1)])).map((space) => space.space)).toEqual(["audio"]);
      await runtime.close();
    } finally {
      await fs.writeFile(manifest, original);
    }
  });

  it("a matrix projector from the manifest fuses and projects; a wrong width is MODEL_ERROR", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-matrix-"));
    const identity = Array.from({ length: 4 }, (_, row) => Array.from({ length: 96 }, (_, col) => (col === row ? 1 : 0)));
    await fs.writeFile(
      path.join(dir, "first-four.yaml"),
      `name: first-four\ntask: project\nmodality: AUDIO\nformat: onnx\nadapter: matrix-projector\nfiles: {}\noutput: { space: image-text, dimensions: 4 }\nprojector: { from: [audio], matrix: ${JSON.stringify(identity)} }\n`,
    );
    const runtime = createModelRuntime({ modelsDir: dir, logger: createLogger("silent") });
    const spaces = await runtime.embedAudio([tone(1)]);
    const audio = spaces.find((space) => space.space === "audio")!.vectors[0]!;
    const projected = spaces.find((space) => space.space === "image-text")!.vectors[0]!;
    expect(cosine(projected, audio.slice(0, 4))).toBeGreaterThan(0.9999);
    const error = await runtime.project("first-four", [[new Float32Array(5)]]).catch((reason) => reason);
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.message).toMatch(/model first-four: shape mismatch/);
    await runtime.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
});
