import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";

/** Where a process runs its graphs: the CPU, NVIDIA's CUDA provider, or onnxruntime's WebGPU provider (Dawn over Vulkan). */
export const DEVICES = ["cpu", "cuda", "webgpu"] as const;
export type Device = (typeof DEVICES)[number];

/** A device named in configuration (MODEL_DEVICE, --device); anything else is a typed configuration error. */
export function parseDevice(value: string | undefined, source: string): Device | undefined {
  if (value === undefined || value === "") return undefined;
  if ((DEVICES as readonly string[]).includes(value)) return value as Device;
  throw new TesseraError(ErrorCode.BAD_USER_INPUT, `${source} must be one of ${DEVICES.join(", ")}, got ${JSON.stringify(value)}`, {
    setting: source,
    allowed: [...DEVICES],
  });
}

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

export type ExecutionChoice = {
  device: Device;
  providers: string[];
  reason: string;
  /** Set when the device asked for could not be used and the CPU runs instead: why. */
  fallbackReason?: string;
};

export type WebGpuProbe = { ok: true } | { ok: false; reason: string };

let webGpuProbe: WebGpuProbe | undefined;

/**
 * Whether onnxruntime-node's WebGPU provider opens a session and computes on this machine: a tiny graph run in
 * a child process (once per process), because the provider is experimental and a driver fault must not kill
 * the worker. Needs a Vulkan loader and a driver that exposes an adapter; a machine without one says so.
 */
export function probeWebGpu(): WebGpuProbe {
  if (webGpuProbe) return webGpuProbe;
  if (!ort.listSupportedBackends().some((backend) => backend.name === "webgpu")) {
    return (webGpuProbe = { ok: false, reason: "this onnxruntime-node build has no WebGPU provider (it ships for Linux x64, Windows and macOS)" });
  }
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "webgpu-probe.mjs");
  const child = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 30_000 });
  const line = child.stdout?.trim().split("\n").pop();
  try {
    webGpuProbe = JSON.parse(line ?? "") as WebGpuProbe;
  } catch {
    const how = child.error ? child.error.message : child.signal ? `killed by ${child.signal}` : `exit code ${child.status}`;
    webGpuProbe = { ok: false, reason: `the WebGPU probe did not finish (${how})` };
  }
  return webGpuProbe;
}

/**
 * CUDA or WebGPU when asked for and usable; CPU otherwise. Logs one line saying which and why (a warning, with
 * the reason, when the device asked for is not usable here).
 */
export function chooseExecutionProvider(requested: Device | undefined, logger: Logger): ExecutionChoice {
  let choice: ExecutionChoice;
  if (requested === "webgpu") {
    const probe = probeWebGpu();
    choice = probe.ok
      ? { device: "webgpu", providers: ["webgpu", "cpu"], reason: "requested, and a WebGPU adapter ran the probe graph" }
      : { device: "cpu", providers: ["cpu"], reason: `WebGPU was requested but is not usable here: ${probe.reason}`, fallbackReason: probe.reason };
  } else if (requested === "cuda") {
    const listed = ort.listSupportedBackends().some((backend) => backend.name === "cuda");
    choice =
      listed && cudaProviderInstalled()
        ? { device: "cuda", providers: ["cuda", "cpu"], reason: "requested, and the CUDA provider libraries are installed" }
        : {
            device: "cpu",
            providers: ["cpu"],
            reason: "CUDA was requested but its provider libraries are missing (use infra/Dockerfile.gpu)",
            fallbackReason: "the CUDA provider libraries are missing",
          };
  } else {
    choice = { device: "cpu", providers: ["cpu"], reason: requested === "cpu" ? "requested" : "default (pass --device cuda or --device webgpu for a GPU)" };
  }
  const log = choice.fallbackReason ? logger.warn.bind(logger) : logger.info.bind(logger);
  log({ device: choice.device, providers: choice.providers, requested: requested ?? null, ...(choice.fallbackReason ? { fallbackReason: choice.fallbackReason } : {}) }, `model runtime: execution provider ${choice.device}: ${choice.reason}`);
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
