import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { Logger } from "../core/logger.ts";

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

/**
 * Session settings every graph gets, on both sides of the encode bench too:
 * intra-op threads when set (MODEL_THREADS), and no spin-waiting. By default
 * onnxruntime's pool threads spin between and after runs, which buys a little
 * latency on cores nobody else wants; a worker shares its cores with the
 * gateway, the job pipeline and the database, and there the spinning is CPU
 * taken from them (measured on a loaded 2-core machine: spinning off gave 22-25
 * instead of 16-19 images/s for the same graph, at 41 instead of 47-51 ms of CPU
 * per image). MODEL_SPINNING=1 turns it back on for dedicated hosts.
 */
export function sessionTuning(intraOpThreads?: number) {
  const spinning = process.env.MODEL_SPINNING === "1";
  return {
    ...(intraOpThreads ? { intraOpNumThreads: intraOpThreads } : {}),
    ...(spinning ? {} : { extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } } }),
  };
}
