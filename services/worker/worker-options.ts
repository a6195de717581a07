import { parseArgs } from "node:util";
import { queueNames, type QueueName } from "../queue/job-payloads.ts";
import type { WorkerPoolOptions } from "./worker-pool.ts";

/** `npm run worker -- --queues ingest,generate --concurrency 8` */
export function parseWorkerOptions(argv: string[]): WorkerPoolOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      queues: { type: "string" },
      concurrency: { type: "string" },
    },
    allowPositionals: false,
  });
  const options: WorkerPoolOptions = {};
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
  return options;
}
