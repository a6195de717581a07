import { describe, expect, it } from "vitest";
import { parseWorkerOptions } from "../../services/worker/worker-options.ts";

describe("worker command line", () => {
  it("declares the device and the models a worker serves", () => {
    expect(parseWorkerOptions(["--device", "cuda", "--models", "clip-*, whisper-*", "--queues", "ingest"])).toEqual({
      queues: ["ingest"],
      serving: { device: "cuda", models: ["clip-*", "whisper-*"] },
    });
    expect(parseWorkerOptions([])).toEqual({ serving: {} });
  });

  it("refuses a device or glob it cannot serve", () => {
    expect(() => parseWorkerOptions(["--device", "tpu"])).toThrow(/--device must be cpu or cuda/);
    expect(() => parseWorkerOptions(["--models", "clip/../x"])).toThrow(/--models takes model name globs/);
    expect(() => parseWorkerOptions(["--models", ","])).toThrow(/--models/);
  });
});
