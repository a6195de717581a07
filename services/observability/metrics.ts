import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The process's Prometheus metrics, on one registry that `/metrics` serves
 * (the gateway's, and the worker's own HTTP port). Names and labels are part
 * of what dashboards and alerts read: test/unit/observability-metric-names.test.ts
 * holds them, so a rename fails a test instead of a dashboard.
 */
export const metricsRegistry = new Registry();
// Process CPU, memory, handles, event-loop delay (nodejs_eventloop_lag_*), GC.
collectDefaultMetrics({ register: metricsRegistry });

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export const graphqlOperationDuration = new Histogram({
  name: "tessera_graphql_operation_duration_seconds",
  help: "Time to execute a GraphQL operation, by operation name and type",
  labelNames: ["operation", "type"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const graphqlErrors = new Counter({
  name: "tessera_graphql_errors_total",
  help: "Errors in GraphQL results, by operation name and error code",
  labelNames: ["operation", "code"] as const,
  registers: [metricsRegistry],
});

export const jobDuration = new Histogram({
  name: "tessera_job_duration_seconds",
  help: "Time a worker spent on one attempt of a job, by queue (the job's kind) and outcome",
  labelNames: ["queue", "status"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const jobQueueWait = new Histogram({
  name: "tessera_job_queue_wait_seconds",
  help: "Time from a job's creation to a worker taking it, by queue",
  labelNames: ["queue"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const modelBatchSize = new Histogram({
  name: "tessera_model_batch_size",
  help: "Items in one model batch, by model, operation and device",
  labelNames: ["model", "operation", "device"] as const,
  buckets: [1, 2, 4, 8, 16, 32, 64, 128],
  registers: [metricsRegistry],
});

export const modelBatchDuration = new Histogram({
  name: "tessera_model_batch_duration_seconds",
  help: "Inference time of one model batch, by model, operation and device",
  labelNames: ["model", "operation", "device"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const vectorStoreDuration = new Histogram({
  name: "tessera_vector_store_duration_seconds",
  help: "Time of one vector store call, by store kind, operation and outcome",
  labelNames: ["store", "operation", "status"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const generationTokens = new Counter({
  name: "tessera_generation_tokens_total",
  help: "Tokens of generation model calls, by provider, model and direction (input, output)",
  labelNames: ["provider", "model", "direction"] as const,
  registers: [metricsRegistry],
});

export const workflowStepDuration = new Histogram({
  name: "tessera_workflow_step_duration_seconds",
  help: "Time one attempt of a workflow step ran, by step type and outcome (succeeded, failed, handed_over: a map or child run took over)",
  labelNames: ["type", "status"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const workflowRunsEnded = new Counter({
  name: "tessera_workflow_runs_ended_total",
  help: "Workflow runs that reached an end state, by that state (SUCCEEDED, FAILED, CANCELLED)",
  labelNames: ["status"] as const,
  registers: [metricsRegistry],
});

/** The job states a queue reports, as `state` labels of tessera_queue_jobs. */
export const QUEUE_STATES = ["waiting", "active", "delayed", "failed", "completed", "prioritized", "waiting-children"] as const;
type QueueLike = { name: string; getJobCounts(...states: string[]): Promise<Record<string, number>> };
const watchedQueues = new Map<string, QueueLike>();
/** A scrape never waits on a Redis that does not answer longer than this: the gauge goes without those queues. */
const QUEUE_COUNT_TIMEOUT_MS = 1000;

export const queueJobs = new Gauge({
  name: "tessera_queue_jobs",
  help: "Jobs in each queue by state (waiting, active, delayed, failed, ...), read from Redis at scrape time",
  labelNames: ["queue", "state"] as const,
  registers: [metricsRegistry],
  async collect() {
    this.reset();
    await Promise.all(
      [...watchedQueues.values()].map(async (queue) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), QUEUE_COUNT_TIMEOUT_MS)));
        const counts = await Promise.race([queue.getJobCounts(...QUEUE_STATES).catch(() => null), timeout]);
        clearTimeout(timer);
        if (!counts) return;
        for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
      }),
    );
  },
});

/** Reports these queues' depths on every scrape, until the returned function is called. */
export function watchQueues(queues: QueueLike[]): () => void {
  for (const queue of queues) watchedQueues.set(queue.name, queue);
  return () => {
    for (const queue of queues) if (watchedQueues.get(queue.name) === queue) watchedQueues.delete(queue.name);
  };
}

/** Runs `fn` and observes its duration (seconds) under `labels` plus `status` ok/error. */
export async function timeCall<T>(histogram: Histogram<string>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  let status = "error";
  try {
    const result = await fn();
    status = "ok";
    return result;
  } finally {
    histogram.observe({ ...labels, status }, (performance.now() - started) / 1000);
  }
}

/**
 * Operation names come from clients: past this many distinct ones, new names
 * are counted as "other", so a client cannot grow the series without bound.
 */
const MAX_OPERATION_NAMES = 200;
const operationNames = new Set<string>();
export function operationLabel(name: string | undefined | null): string {
  if (!name) return "anonymous";
  if (operationNames.has(name)) return name;
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,99}$/.test(name) || operationNames.size >= MAX_OPERATION_NAMES) return "other";
  operationNames.add(name);
  return name;
}
