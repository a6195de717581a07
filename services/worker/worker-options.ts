import { parseArgs } from "node:util";
import { queueNames, type QueueName } from "../queue/job-payloads.ts";
import { parseDevice } from "../models/execution-provider.ts";
import type { ModelServing } from "../models/local-model-runtime.ts";
import type { WorkerPoolOptions } from "./worker-pool.ts";

/** The `--queues` name of the model-call queues (one per model this worker serves). */
const MODEL_CALLS = "models";

function modelGlobs(flag: string, value: string): string[] {
  const globs = value.split(",").map((glob) => glob.trim()).filter(Boolean);
  const bad = globs.filter((glob) => !/^[a-z0-9._*?-]+$/.test(glob));
  if (bad.length || globs.length === 0) throw new Error(`${flag} takes model name globs like clip-*,silero-vad; got ${value}`);
  return globs;
}

export type WorkerOptions = WorkerPoolOptions & {
  /** What this worker's model runtime serves: `--device cuda --models clip-*,whisper-*`. */
  serving: Pick<ModelServing, "device" | "models" | "remoteModels">;
  /** `--preload clip-*` (or `served`): models loaded right after start, before /ready says ready; overrides MODEL_PRELOAD. */
  preload?: string[];
};

/**
 * `npm run worker -- --queues ingest,generate --concurrency 8 --device cuda --models clip-* --remote-models whisper-* --preload served`.
 * `--queues models` (alone or with others) takes calls of this worker's models from other workers.
 */
export function parseWorkerOptions(argv: string[]): WorkerOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      queues: { type: "string" },
      concurrency: { type: "string" },
      device: { type: "string" },
      models: { type: "string" },
      "remote-models": { type: "string" },
      preload: { type: "string" },
    },
    allowPositionals: false,
  });
  const options: WorkerOptions = { serving: {} };
  if (values.queues) {
    const requested = values.queues.split(",").map((name) => name.trim());
    const unknown = requested.filter((name) => name !== MODEL_CALLS && !queueNames.includes(name as QueueName));
    if (unknown.length) throw new Error(`unknown queue(s): ${unknown.join(", ")}; known: ${[...queueNames, MODEL_CALLS].join(", ")}`);
    options.queues = requested.filter((name) => name !== MODEL_CALLS) as QueueName[];
    options.modelCalls = requested.includes(MODEL_CALLS);
  }
  if (values.concurrency) {
    const concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error("--concurrency must be a positive integer");
    options.concurrency = concurrency;
  }
  if (values.device) {
    options.serving.device = parseDevice(values.device, "--device");
  }
  if (values.models) {
    options.serving.models = modelGlobs("--models", values.models);
  }
  if (values["remote-models"]) options.serving.remoteModels = modelGlobs("--remote-models", values["remote-models"]);
  if (values.preload) options.preload = modelGlobs("--preload", values.preload);
  return options;
}
