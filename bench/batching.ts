import type { DecodedImage } from "../services/assets/decoded-media.ts";
/**
 * `npm run bench -- batching`: image embeddings through the model runtime
 * with dynamic batching on (up to the manifest's 32 per batch, 5 ms wait)
 * against batch size 1, under 1, 8 and 64 concurrent callers: throughput and
 * p50/p99 latency per request. The raw engine (the same vision graph on
 * onnxruntime-node, one image per run, back to back) is measured in the same run.
 *
 * BENCH_BATCHING_REQUESTS per setting (default 128), vision tower
 * BENCH_BATCHING_WIDTH x BENCH_BATCHING_LAYERS (default 512 x 4, patch 32, 224 px).
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { createLogger } from "../services/core/logger.ts";
import { sessionTuning } from "../services/models/execution-provider.ts";
import { createModelRuntime } from "../services/models/local-model-runtime.ts";
import { writeTinyClipExport } from "../test/support/fixture-models/tiny-clip.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (message: string) => process.stderr.write(`[bench batching] ${message}\n`);

type Result = { batching: "on" | "off"; concurrency: number; per_s: number; p50_ms: number; p99_ms: number; mean_batch: number };

export default async function batchingBench() {
  const requests = env("BENCH_BATCHING_REQUESTS", 128);
  const vision = { patch: 32, width: env("BENCH_BATCHING_WIDTH", 512), layers: env("BENCH_BATCHING_LAYERS", 4) };
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-batching-"));
  await writeTinyClipExport(path.join(scratch, "clip"), { imageSize: 224, dimensions: 512, vision });
  const images: DecodedImage[] = Array.from({ length: 16 }, (_, index) => ({
    rgb: Buffer.alloc(224 * 224 * 3, (index * 37) & 255),
    width: 224,
    height: 224,
  }));
  const results: Result[] = [];
  try {
    for (const batching of [true, false]) {
      const runtime = createModelRuntime({ modelsDir: scratch, logger: createLogger("warn", "bench"), models: ["clip"], batching });
      await runtime.embedImages([images[0]!]); // load the model
      for (const concurrency of [1, 8, 64]) {
        const before = runtime.batchSizes("clip", "embedImages").count;
        const latencies: number[] = [];
        let next = 0;
        const started = performance.now();
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < requests) {
              const index = next++;
              const sent = performance.now();
              await runtime.embedImages([images[index % images.length]!]);
              latencies.push(performance.now() - sent);
            }
          }),
        );
        const seconds = (performance.now() - started) / 1000;
        const batches = runtime.batchSizes("clip", "embedImages").since(before);
        latencies.sort((a, b) => a - b);
        const result: Result = {
          batching: batching ? "on" : "off",
          concurrency,
          per_s: round(requests / seconds),
          p50_ms: round(percentile(latencies, 0.5)),
          p99_ms: round(percentile(latencies, 0.99)),
          mean_batch: round(batches.reduce((a, b) => a + b, 0) / batches.length),
        };
        log(JSON.stringify(result));
        results.push(result);
      }
      await runtime.close();
    }

    // Raw engine: one image per session.run, back to back, on pre-made tensors (no preprocessing).
    const session = await ort.InferenceSession.create(path.join(scratch, "clip", "onnx", "vision_model.onnx"), {
      graphOptimizationLevel: "all",
      // The runtime's own session settings (no spin-waiting), so both sides run the graph alike.
      ...sessionTuning(),
    });
    const input = new ort.Tensor("float32", new Float32Array(3 * 224 * 224).fill(0.1), [1, 3, 224, 224]);
    await session.run({ pixel_values: input });
    const rawStarted = performance.now();
    for (let done = 0; done < requests; done++) await session.run({ pixel_values: input });
    const rawPerSec = requests / ((performance.now() - rawStarted) / 1000);
    await session.release();
    log(`onnxruntime-node alone, batch 1: ${rawPerSec.toFixed(2)}/s`);

    const at = (batching: "on" | "off", concurrency: number) => results.find((r) => r.batching === batching && r.concurrency === concurrency)!;
    console.log(
      JSON.stringify({
        bench: "batching",
        model: `clip vision (synthetic, width ${vision.width}, ${vision.layers} blocks, 224 px)`,
        requests,
        results,
        raw_batch1_per_s: round(rawPerSec),
        speedup_at_64: round(at("on", 64).per_s / at("off", 64).per_s, 3),
        off_to_raw_ratio: round(at("off", 1).per_s / rawPerSec, 3),
      }),
    );
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

function percentile(sorted: number[], q: number) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function round(value: number, digits = 2) {
  return Number(value.toFixed(digits));
}
