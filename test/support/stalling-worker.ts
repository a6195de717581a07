/**
 * A BullMQ worker that takes one job of a queue and never finishes it: killed with SIGKILL,
 * it leaves the job stalled, as a real worker killed mid-job (or out of memory) does.
 * Its own stall checker hands stalled jobs on without failing them (maxStalledCount high),
 * so how often a job may stall is decided by the worker under test.
 * Env: REDIS_URL, QUEUE_PREFIX, QUEUE, LOCK_MS.
 */
import { Worker } from "bullmq";
import { Redis } from "ioredis";

const lockDuration = Number(process.env.LOCK_MS ?? 1000);
const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const worker = new Worker(process.env.QUEUE!, () => new Promise(() => {}), {
  connection,
  prefix: process.env.QUEUE_PREFIX!,
  lockDuration,
  stalledInterval: Math.max(100, lockDuration / 2),
  maxStalledCount: 100,
});
worker.on("active", (job) => console.log(`took ${job.id}`));
await worker.waitUntilReady();
console.log("stalling worker started");
