import { once } from "node:events";
import { Queue, type JobsOptions, type Telemetry } from "bullmq";
import type { Redis } from "ioredis";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { withTimeout } from "../core/with-timeout.ts";
import { jobPayloads, type JobPayload, type QueueName } from "./job-payloads.ts";

/** Retries with backoff: a worker that dies mid-job leaves it stalled, and BullMQ hands it to another. */
const defaultJobOptions: JobsOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 5000 },
};

export type JobQueuesOptions = {
  prefix: string;
  /** Longest an `enqueue` waits for Redis before it gives up with SERVICE_UNAVAILABLE. */
  addTimeoutMs: number;
  /** With tracing on (services/observability queueTelemetry()): each job carries the W3C trace context of the code that added it. */
  telemetry?: Telemetry;
};

/**
 * Producers: one BullMQ queue per name, created on first use. The connection should fail fast
 * (`createRequestRedis`): producers run while a request or a job waits, and a Redis outage
 * must turn into SERVICE_UNAVAILABLE within seconds, not into a call that waits for ever.
 */
export class JobQueues {
  private readonly queues = new Map<QueueName, Queue>();
  /** Once connected, a lost connection fails calls at once; before, they wait for the first connection. */
  private wasReady: boolean;

  constructor(
    private readonly connection: Redis,
    private readonly options: JobQueuesOptions,
  ) {
    this.wasReady = connection.status === "ready";
    connection.once("ready", () => (this.wasReady = true));
  }

  queue(name: QueueName): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix: this.options.prefix, defaultJobOptions, telemetry: this.options.telemetry });
      // A queue shares the connection's errors; the caller of enqueue gets them as SERVICE_UNAVAILABLE.
      queue.on("error", () => {});
      this.queues.set(name, queue);
    }
    return queue;
  }

  /**
   * Validates the payload against the queue's contract; `jobId` makes enqueueing idempotent.
   * Throws SERVICE_UNAVAILABLE at once while Redis is disconnected, and after `addTimeoutMs` when it does not answer.
   */
  async enqueue<Q extends QueueName>(name: Q, payload: JobPayload<Q>, options: JobsOptions & { jobId: string }) {
    const data = jobPayloads[name].parse(payload);
    if (this.connection.status !== "ready" && this.wasReady) {
      throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `the job queue is unavailable (Redis is ${this.connection.status}); retry later`);
    }
    try {
      // Right after start the first connection may still be on its way: that one is waited for, within the same bound.
      const added = (async () => {
        if (this.connection.status !== "ready") await once(this.connection, "ready");
        return this.queue(name).add(name, data, options);
      })();
      return await withTimeout(added, this.options.addTimeoutMs, "adding the job");
    } catch (error) {
      // A job that got in after the timeout has a jobId whose rows the caller removed: its worker fails it as NOT_FOUND.
      const reason = error instanceof Error ? error.message : String(error);
      throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `the job queue is unavailable (${reason}); retry later`);
    }
  }

  /** `enqueue` for many jobs of one queue in one Redis round trip (BullMQ's addBulk), with the same checks and bound. */
  async enqueueBulk<Q extends QueueName>(name: Q, jobs: { payload: JobPayload<Q>; options: JobsOptions & { jobId: string } }[]) {
    if (jobs.length <= 1) return Promise.all(jobs.map((job) => this.enqueue(name, job.payload, job.options)));
    const bulk = jobs.map((job) => ({ name, data: jobPayloads[name].parse(job.payload), opts: job.options }));
    if (this.connection.status !== "ready" && this.wasReady) {
      throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `the job queue is unavailable (Redis is ${this.connection.status}); retry later`);
    }
    try {
      const added = (async () => {
        if (this.connection.status !== "ready") await once(this.connection, "ready");
        return this.queue(name).addBulk(bulk);
      })();
      return await withTimeout(added, this.options.addTimeoutMs, "adding the jobs");
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `the job queue is unavailable (${reason}); retry later`);
    }
  }

  async close() {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
