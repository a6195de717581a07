import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { Logger } from "../../core/logger.ts";

export type Device = "cpu" | "cuda";

const require = createRequire(import.meta.url);

/**
 * CUDA needs onnxruntime-node's provider libraries beside its binding (the
 * GPU image installs them; the CPU install skips that download).
 */
export function cudaProviderInstalled(): boolean {
  const binding = path.join(
    path.dirname(require.resolve("onnxruntime-node")),
    "..",
    "bin",
    "napi-v6",
    process.platform,
    process.arch,
  );
  return fs.existsSync(path.join(binding, "libonnxruntime_providers_cuda.so"));
}

export type ExecutionChoice = { device: Device; providers: string[]; reason: string };

/** CUDA when it was asked for and can load; CPU otherwise. Logs one line saying which and why. */
export function chooseExecutionProvider(requested: Device | undefined, logger: Logger): ExecutionChoice {
  let choice: ExecutionChoice;
  if (requested === "cuda") {
    const listed = ort.listSupportedBackends().some((backend) => backend.name === "cuda");
    choice =
      listed && cudaProviderInstalled()
        ? { device: "cuda", providers: ["cuda", "cpu"], reason: "requested, and the CUDA provider libraries are installed" }
        : { device: "cpu", providers: ["cpu"], reason: "CUDA was requested but its provider libraries are missing (use infra/Dockerfile.gpu)" };
  } else {
    choice = { device: "cpu", providers: ["cpu"], reason: requested === "cpu" ? "requested" : "default (pass --device cuda for the GPU)" };
  }
  const log = requested === "cuda" && choice.device === "cpu" ? logger.warn.bind(logger) : logger.info.bind(logger);
  log({ device: choice.device, providers: choice.providers }, `model runtime: execution provider ${choice.device}: ${choice.reason}`);
  return choice;
}
