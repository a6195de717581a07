import { describe, expect, it } from "vitest";
import type { Logger } from "../../services/core/logger.ts";
import { chooseExecutionProvider, cudaProviderInstalled } from "../../services/models/execution-provider.ts";

function recordingLogger() {
  const lines: Array<{ level: string; message: string }> = [];
  const record = (level: string) => (_fields: unknown, message: string) => lines.push({ level, message });
  return { logger: { info: record("info"), warn: record("warn") } as unknown as Logger, lines };
}

describe("execution provider choice", () => {
  it("is the CPU by default, said in one line", () => {
    const { logger, lines } = recordingLogger();
    expect(chooseExecutionProvider(undefined, logger)).toMatchObject({ device: "cpu", providers: ["cpu"] });
    expect(lines).toEqual([{ level: "info", message: "model runtime: execution provider cpu: default (pass --device cuda for the GPU)" }]);
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
