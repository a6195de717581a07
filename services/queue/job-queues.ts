import { Queue, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import { jobPayloads, type JobPayload, type QueueName } from "./job-payloads.ts";

/** Retries with backoff: a worker that dies mid-job leaves it stalled, and BullMQ hands it to another. */
const defaultJobOptions: JobsOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 5000 },
};

/** Producers: one BullMQ queue per name, created on first use. */
export class JobQueues {
  private readonly queues = new Map<QueueName, Queue>();

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
  ) {}

  queue(name: QueueName): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix: this.prefix, defaultJobOptions });
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Validates the payload against the queue's contract; `jobId` makes enqueueing idempotent. */
  async enqueue<Q extends QueueName>(name: Q, payload: JobPayload<Q>, options: JobsOptions & { jobId: string }) {
    const data = jobPayloads[name].parse(payload);
    return this.queue(name).add(name, data, options);
  }

  async close() {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
