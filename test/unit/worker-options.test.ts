import { describe, expect, it } from "vitest";
import { parseWorkerOptions } from "../../services/worker/worker-options.ts";

describe("worker command line", () => {
  it("declares the device and the models a worker serves", () => {
    expect(parseWorkerOptions(["--device", "cuda", "--models", "clip-*, whisper-*", "--queues", "ingest"])).toEqual({
      queues: ["ingest"],
      modelCalls: false,
      serving: { device: "cuda", models: ["clip-*", "whisper-*"] },
    });
    // A GPU worker that only answers other workers' calls of its models; a CPU worker that sends CLIP there.
    expect(parseWorkerOptions(["--device", "cuda", "--models", "clip-*", "--queues", "models"])).toEqual({
      queues: [],
      modelCalls: true,
      serving: { device: "cuda", models: ["clip-*"] },
    });
    expect(parseWorkerOptions(["--remote-models", "clip-*"])).toEqual({ serving: { remoteModels: ["clip-*"] } });
    expect(parseWorkerOptions([])).toEqual({ serving: {} });
  });

  it("refuses a device or glob it cannot serve", () => {
    expect(() => parseWorkerOptions(["--device", "tpu"])).toThrow(/--device must be one of cpu, cuda, webgpu/);
    expect(() => parseWorkerOptions(["--models", "clip/../x"])).toThrow(/--models takes model name globs/);
    expect(() => parseWorkerOptions(["--models", ","])).toThrow(/--models/);
    expect(() => parseWorkerOptions(["--remote-models", "CLIP!"])).toThrow(/--remote-models takes model name globs/);
    expect(() => parseWorkerOptions(["--queues", "models,nope"])).toThrow(/unknown queue\(s\): nope/);
  });
});
