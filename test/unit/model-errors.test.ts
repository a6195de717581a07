import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TesseraError } from "../../services/core/errors.ts";
import { createLogger } from "../../services/core/logger.ts";
import { createModelRuntime } from "../../services/models/local-model-runtime.ts";
import { solidImage } from "../support/fixture-models/model-fixtures.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";

const dirs: string[] = [];
async function modelsDirWith(setup: (dir: string) => Promise<void>) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-model-errors-"));
  dirs.push(dir);
  await setup(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

async function rejection(promise: Promise<unknown>): Promise<TesseraError> {
  const error = await promise.then(() => null, (reason) => reason);
  expect(error).toBeInstanceOf(TesseraError);
  return error as TesseraError;
}

describe("model errors are typed, name the model, and leave the runtime working", () => {
  it("an export missing a graph at start-up is not served, and says what is missing", async () => {
    const modelsDir = await modelsDirWith(async (dir) => {
      await writeTinyClipExport(path.join(dir, "clip"));
      await fs.rm(path.join(dir, "clip", "onnx", "vision_model.onnx"));
    });
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["clip", "use-lite-sentence"] });
    expect(runtime.list().map((model) => model.name)).toEqual(["use-lite-sentence"]);
    expect(runtime.describe().find((model) => model.name === "clip")).toMatchObject({
      served: false,
      missing: [path.join(modelsDir, "clip", "onnx", "vision_model.onnx")],
    });
    expect(await runtime.embedImages([solidImage(32, 32, [0, 0, 0])])).toEqual([]);
  });

  it("a graph file that disappears after start-up is MODEL_NOT_FOUND naming the model and the file", async () => {
    const modelsDir = await modelsDirWith((dir) => writeTinyClipExport(path.join(dir, "clip")));
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["clip"] });
    expect(runtime.list().map((model) => model.name)).toEqual(["clip"]);
    await fs.rm(path.join(modelsDir, "clip", "onnx", "vision_model.onnx"));
    const error = await rejection(runtime.embedImages([solidImage(32, 32, [0, 0, 0])]));
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toMatch(/^model clip: file .*vision_model\.onnx is missing/);
    expect(error.details).toMatchObject({ model: "clip" });
    // The text tower is intact and still answers.
    const [space] = await runtime.embedText(["still works"]);
    expect(space!.vectors[0]!.length).toBe(16);
    await runtime.close();
  });

  it("a corrupt graph is MODEL_ERROR naming the model; fixing the file makes the next call work", async () => {
    const modelsDir = await modelsDirWith(async (dir) => {
      await writeTinyClipExport(path.join(dir, "clip"));
      await fs.writeFile(path.join(dir, "clip", "onnx", "vision_model.onnx"), Buffer.from("this is not a protobuf"));
    });
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["clip"] });
    const error = await rejection(runtime.embedImages([solidImage(32, 32, [0, 0, 0])]));
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.details).toMatchObject({ model: "clip" });
    // Same runtime, no restart: the failed tower is forgotten and loads from the fixed file.
    await writeTinyClipExport(path.join(modelsDir, "clip"));
    expect((await runtime.embedImages([solidImage(32, 32, [0, 0, 0])]))[0]!.vectors).toHaveLength(1);
    await runtime.close();
  });

  it("a shape mismatch with the manifest is MODEL_ERROR", async () => {
    const modelsDir = await modelsDirWith(async (dir) => {
      await writeTinyClipExport(path.join(dir, "clip"));
      // MODELS_DIR's manifest overrides the built-in one by name: it claims 32 dimensions, the graph gives 16.
      const builtIn = await fs.readFile(path.resolve("models/clip.yaml"), "utf8");
      await fs.writeFile(path.join(dir, "clip.yaml"), builtIn.replace("output: { space: image-text, normalize: true }", "output: { space: image-text, dimensions: 32 }"));
    });
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["clip"] });
    const error = await rejection(runtime.embedText(["a cat"]));
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.message).toMatch(/model clip: shape mismatch: the manifest says 32 dimensions, the model gave 16/);
    await runtime.close();
  });

  it("a graph fed the wrong input size is MODEL_ERROR, not a crash", async () => {
    const modelsDir = await modelsDirWith(async (dir) => {
      await writeTinyClipExport(path.join(dir, "clip"), { imageSize: 32 });
      // The manifest asks for 40x40 pixels; the graph takes 32x32.
      const builtIn = await fs.readFile(path.resolve("models/clip.yaml"), "utf8");
      await fs.writeFile(path.join(dir, "clip.yaml"), builtIn.replace("image: { resize: cover-crop }", "image: { resize: cover-crop, width: 40, height: 40 }"));
    });
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["clip"] });
    const error = await rejection(runtime.embedImages([solidImage(50, 50, [10, 10, 10])]));
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.details).toMatchObject({ model: "clip" });
    await runtime.close();
  });

  it("a discovered Whisper folder without its graphs is not served, and no transcriber means null", async () => {
    const modelsDir = await modelsDirWith(async (dir) => {
      await fs.mkdir(path.join(dir, "whisper-tiny"));
      await fs.writeFile(path.join(dir, "whisper-tiny", "config.json"), JSON.stringify({ model_type: "whisper" }));
    });
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["whisper*"] });
    expect(runtime.list()).toEqual([]);
    expect(runtime.describe().find((model) => model.name === "whisper-tiny")).toMatchObject({ task: "transcribe", served: false });
    expect(await runtime.transcribe(new Float32Array(16000))).toBeNull();
  });

  it("an invalid manifest is skipped and reported with its problems; the others are served", async () => {
    const modelsDir = await modelsDirWith(async (dir) => {
      await fs.writeFile(path.join(dir, "broken.yaml"), "name: Broken Name\ntask: juggle\nmodality: TEXT\n");
      await fs.writeFile(path.join(dir, "not-yaml.yaml"), "name: [unclosed\n");
    });
    const runtime = createModelRuntime({ modelsDir, logger: createLogger("silent") });
    const problems = runtime.manifestProblems();
    expect(problems.map((problem) => path.basename(problem.file)).sort()).toEqual(["broken.yaml", "not-yaml.yaml"]);
    const broken = problems.find((problem) => problem.file.endsWith("broken.yaml"))!;
    expect(broken.problems.join("\n")).toMatch(/name: lowercase/);
    expect(broken.problems.join("\n")).toMatch(/task:/);
    expect(runtime.list().map((model) => model.name)).toContain("silero-vad");
  });
});
