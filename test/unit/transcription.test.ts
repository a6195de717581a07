import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../services/core/logger.ts";
import { createModelRuntime, type LocalModelRuntime } from "../../services/models/local-model-runtime.ts";
import { tone } from "../support/fixture-models/model-fixtures.ts";
import { buildTinyWhisper } from "../support/fixture-models/tiny-whisper/build-tiny-whisper.ts";

/*
 * The whisper manifest through transformers.js' speech recognition pipeline,
 * on a tiny export in Whisper's exact layout (encoder, merged decoder with
 * KV cache, tokenizer, generation and feature-extractor configs). Its
 * "acoustics" tell sound ("tuvwxyz") from silence ("stuvwxyz").
 */
let modelsDir: string;
let runtime: LocalModelRuntime;

beforeAll(async () => {
  modelsDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-whisper-"));
  await buildTinyWhisper(modelsDir, {}, "whisper");
  runtime = createModelRuntime({ modelsDir, logger: createLogger("silent"), models: ["whisper"] });
});

afterAll(async () => {
  await runtime.close();
  await fs.rm(modelsDir, { recursive: true, force: true });
});

describe("transcription through the model runtime", () => {
  it("serves a Whisper export in MODELS_DIR/whisper", () => {
    expect(runtime.list()).toEqual([{ name: "whisper", modality: "AUDIO", task: "transcribe", dimensions: null, device: "cpu", space: null }]);
  });

  it("transcribes 16 kHz PCM, and what it hears follows the audio", async () => {
    const [sound, silence] = await Promise.all([runtime.transcribe(tone(2)), runtime.transcribe(new Float32Array(2 * 16000))]);
    expect(sound).toBe("tuvwxyz");
    expect(silence).toBe("stuvwxyz");
  });
});
