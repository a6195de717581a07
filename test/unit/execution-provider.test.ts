import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { TesseraError } from "../../services/core/errors.ts";
import type { Logger } from "../../services/core/logger.ts";
import { chooseExecutionProvider, cudaProviderInstalled, parseDevice, probeWebGpu } from "../../services/models/execution-provider.ts";
import { createModelRuntime } from "../../services/models/local-model-runtime.ts";
import { OnnxSessions } from "../../services/models/onnx-sessions.ts";

function recordingLogger() {
  const lines: Array<{ level: string; message: string }> = [];
  const record = (level: string) => (_fields: unknown, message: string) => lines.push({ level, message });
  return { logger: { info: record("info"), warn: record("warn") } as unknown as Logger, lines };
}

describe("execution provider choice", () => {
  it("is the CPU by default, said in one line", () => {
    const { logger, lines } = recordingLogger();
    expect(chooseExecutionProvider(undefined, logger)).toMatchObject({ device: "cpu", providers: ["cpu"] });
    expect(lines).toEqual([{ level: "info", message: "model runtime: execution provider cpu: default (pass --device cuda or --device webgpu for a GPU)" }]);
  });

  // The CPU install (package.json allowScripts) has no CUDA provider libraries; the GPU image does.
  it.skipIf(cudaProviderInstalled())("falls back to the CPU with a warning saying why when CUDA is asked for but cannot load", () => {
    const { logger, lines } = recordingLogger();
    expect(chooseExecutionProvider("cuda", logger)).toMatchObject({ device: "cpu", providers: ["cpu"] });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "warn" });
    expect(lines[0]!.message).toMatch(/CUDA was requested but its provider libraries are missing/);
  });
});

describe("WebGPU as a device", () => {
  // Where Dawn finds no adapter (no Vulkan driver, as on CI), asking for WebGPU must still give a working session.
  it.skipIf(probeWebGpu().ok)("falls back to a CPU session that computes, with the reason logged and recorded", async () => {
    const { logger, lines } = recordingLogger();
    const choice = chooseExecutionProvider("webgpu", logger);
    expect(choice).toMatchObject({ device: "cpu", providers: ["cpu"] });
    expect(choice.fallbackReason).toMatch(/WebGPU adapter|no WebGPU provider|did not finish/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "warn" });
    expect(lines[0]!.message).toContain(`WebGPU was requested but is not usable here: ${choice.fallbackReason}`);

    const sessions = new OnnxSessions(choice);
    try {
      const session = await sessions.get("probe", await tinyAddModel());
      const { Y } = await session.run({ X: new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4]), [1, 4]) });
      expect(Array.from(Y!.data as Float32Array)).toEqual([2, 4, 6, 8]);
    } finally {
      await sessions.close();
    }
  });

  it("is listed by this onnxruntime-node build, and probed once per process", () => {
    expect(ort.listSupportedBackends().map((backend) => backend.name)).toContain("webgpu");
    expect(probeWebGpu()).toBe(probeWebGpu());
  });

  it("an unknown device is a typed configuration error; the known ones parse", () => {
    expect(parseDevice("webgpu", "MODEL_DEVICE")).toBe("webgpu");
    expect(parseDevice(undefined, "MODEL_DEVICE")).toBeUndefined();
    let error: unknown;
    try {
      parseDevice("tpu", "MODEL_DEVICE");
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(TesseraError);
    expect(error).toMatchObject({ code: "BAD_USER_INPUT", message: 'MODEL_DEVICE must be one of cpu, cuda, webgpu, got "tpu"' });
  });

  it("MODEL_DEVICE=tpu stops the model runtime at creation with that error", () => {
    const saved = process.env.MODEL_DEVICE;
    process.env.MODEL_DEVICE = "tpu";
    try {
      expect(() => createModelRuntime({ modelsDir: "/nonexistent", logger: recordingLogger().logger })).toThrow(/MODEL_DEVICE must be one of cpu, cuda, webgpu/);
    } finally {
      if (saved === undefined) delete process.env.MODEL_DEVICE;
      else process.env.MODEL_DEVICE = saved;
    }
  });
});

/** The probe's own graph (Y = X + X), written to a file as a model would be. */
async function tinyAddModel(): Promise<string> {
  const source = await fsp.readFile(new URL("../../services/models/webgpu-probe.mjs", import.meta.url), "utf8");
  const base64 = /"([A-Za-z0-9+/=]{100,})"/.exec(source)![1]!;
  const file = path.join(await fsp.mkdtemp(path.join(os.tmpdir(), "tessera-webgpu-")), "add.onnx");
  await fsp.writeFile(file, Buffer.from(base64, "base64"));
  return file;
}
