import { parseArgs } from "node:util";
import { queueNames, type QueueName } from "../queue/job-payloads.ts";
import type { ModelServing } from "./models/local-model-runtime.ts";
import type { WorkerPoolOptions } from "./worker-pool.ts";

export type WorkerOptions = WorkerPoolOptions & {
  /** What this worker's model runtime serves: `--device cuda --models clip-*,whisper-*`. */
  serving: Pick<ModelServing, "device" | "models">;
};

/** `npm run worker -- --queues ingest,generate --concurrency 8 --device cuda --models clip-*` */
export function parseWorkerOptions(argv: string[]): WorkerOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      queues: { type: "string" },
      concurrency: { type: "string" },
      device: { type: "string" },
      models: { type: "string" },
    },
    allowPositionals: false,
  });
  const options: WorkerOptions = { serving: {} };
  if (values.queues) {
    const requested = values.queues.split(",").map((name) => name.trim());
    const unknown = requested.filter((name) => !queueNames.includes(name as QueueName));
    if (unknown.length) throw new Error(`unknown queue(s): ${unknown.join(", ")}; known: ${queueNames.join(", ")}`);
    options.queues = requested as QueueName[];
  }
  if (values.concurrency) {
    const concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error("--concurrency must be a positive integer");
    options.concurrency = concurrency;
  }
  if (values.device) {
    if (values.device !== "cpu" && values.device !== "cuda") throw new Error(`--device must be cpu or cuda, got ${values.device}`);
    options.serving.device = values.device;
  }
  if (values.models) {
    const globs = values.models.split(",").map((glob) => glob.trim()).filter(Boolean);
    const bad = globs.filter((glob) => !/^[a-z0-9._*?-]+$/.test(glob));
    if (bad.length || globs.length === 0) throw new Error(`--models takes model name globs like clip-*,silero-vad; got ${values.models}`);
    options.serving.models = globs;
  }
  return options;
}
