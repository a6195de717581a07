import { UnrecoverableError, Worker, type Job as BullJob } from "bullmq";
import type { AppContext } from "../app/app-context.ts";
import { ErrorCode, TesseraError, toErrorRecord } from "../core/errors.ts";
import { databaseUnavailable } from "../core/database-errors.ts";
import { jobPayloads, queueNames, type QueueName } from "../queue/job-payloads.ts";
import type { JobHandler } from "./job-handler.ts";
import { jobHandlers } from "./handlers/index.ts";
import { JobTracker } from "./job-tracker.ts";
import { LostJobs, reconcileLostJob } from "./lost-jobs.ts";
import { jobDuration, jobQueueWait, watchQueues } from "../observability/metrics.ts";
import { queueTelemetry } from "../observability/tracing.ts";
import { recordQueueWait } from "../observability/instruments.ts";
import { serveModelCalls } from "../models/remote-model-calls.ts";
import { startReconciler } from "./reconciler.ts";

/** Errors that retrying cannot fix: the input is wrong, so fail at once. */
const PERMANENT_CODES = new Set<string>([
  ErrorCode.BAD_USER_INPUT,
  ErrorCode.UNSUPPORTED_MEDIA_TYPE,
  ErrorCode.CORRUPT_MEDIA,
  ErrorCode.PAYLOAD_TOO_LARGE,
  ErrorCode.URL_NOT_ALLOWED,
  ErrorCode.NOT_FOUND,
  ErrorCode.INVALID_WORKFLOW,
  ErrorCode.MODEL_NOT_FOUND,
  ErrorCode.CANCELLED,
  ErrorCode.EXPRESSION_LIMIT,
]);

export type WorkerPoolOptions = {
  /** Queues this process serves; default: every queue that has a handler. */
  queues?: QueueName[];
  concurrency?: number;
  /** Take calls of this process's models from other workers (`--queues models`); default: yes. */
  modelCalls?: boolean;
  /** Serve the reconciler's scheduled passes (RECONCILE_INTERVAL_MS); default: yes. */
  reconcile?: boolean;
};

/** Starts one BullMQ worker per served queue; `close()` drains them. */
export function startWorkerPool(app: AppContext, options: WorkerPoolOptions = {}) {
  const served = (options.queues ?? queueNames).filter((name) => jobHandlers[name]);
  const lost = new LostJobs();
  /** Rows being marked for jobs the queue failed: close() waits for them before the database goes. */
  const marking = new Set<Promise<void>>();
  const workers = served.map((name) => {
    const handler = jobHandlers[name] as JobHandler<QueueName>;
    const worker = new Worker(name, (job: BullJob) => processJob(app, name, handler, job, lost), {
      connection: app.redis,
      prefix: app.config.QUEUE_PREFIX,
      concurrency: options.concurrency ?? app.config.WORKER_CONCURRENCY,
      // A dead worker's job is handed on within lockDuration + stalledInterval (BullMQ renews the lock at half its duration).
      lockDuration: app.config.WORKER_LOCK_MS,
      stalledInterval: app.config.WORKER_STALLED_CHECK_MS,
      maxStalledCount: app.config.WORKER_MAX_STALLS,
      // With tracing on, a job's spans continue the trace of whoever queued it (W3C context in the job's options).
      telemetry: queueTelemetry(),
    });
    worker.on("error", (error) => app.logger.error({ err: error, queue: name }, "worker error"));
    // BullMQ fails a job that stalled too often without calling the processor: its rows are marked here.
    worker.on("failed", (job, error) => {
      if (!job || typeof error !== "object" || lost.isHandled(error)) return;
      const marked = reconcileLostJob(app, name, handler, job, error.message)
        .catch((err) => app.logger.error({ err, queue: name, jobId: job.id }, "could not mark the rows of a job the queue failed"))
        .finally(() => marking.delete(marked));
      marking.add(marked);
    });
    return worker;
  });
  // tessera_queue_jobs{queue,state}: the depth of each served queue, read at scrape time.
  const unwatchQueues = watchQueues(served.map((name) => app.queues.queue(name)));
  const modelCallWorkers =
    options.modelCalls === false ? [] : serveModelCalls(app.models, { redis: app.redis, prefix: app.config.QUEUE_PREFIX, logger: app.logger });
  // Rows left without a job (a crash between commit and add, a Redis restart) are found and enqueued again.
  const reconciler = options.reconcile === false ? null : startReconciler(app);
  app.logger.info({ queues: served, modelCalls: modelCallWorkers.map((worker) => worker.name) }, "worker started");
  return {
    queues: served,
    workers,
    /** Waits for running jobs (and model calls) to finish, then disconnects. */
    async close() {
      await (await reconciler)?.close();
      await Promise.all([...workers, ...modelCallWorkers].map((worker) => worker.close()));
      unwatchQueues();
      await Promise.all(marking);
    },
  };
}

/** Whatever the processor throws, it has dealt with (or left for a retry): only BullMQ's own failures are lost jobs. */
async function processJob(app: AppContext, queue: QueueName, handler: JobHandler<QueueName>, job: BullJob, lost: LostJobs) {
  const started = performance.now();
  if (job.processedOn) jobQueueWait.observe({ queue }, Math.max(0, job.processedOn - job.timestamp) / 1000);
  recordQueueWait(queue, job.timestamp, job.processedOn);
  let status = "failed";
  try {
    const output = await runJob(app, queue, handler, job);
    status = "succeeded";
    return output;
  } catch (error) {
    throw lost.handledBy(error);
  } finally {
    jobDuration.observe({ queue, status }, (performance.now() - started) / 1000);
  }
}

async function runJob(app: AppContext, queue: QueueName, handler: JobHandler<QueueName>, job: BullJob) {
  const parsed = jobPayloads[queue].safeParse(job.data);
  if (!parsed.success) {
    app.logger.error({ queue, jobId: job.id, issues: parsed.error.issues }, "job payload breaks the queue contract");
    throw new UnrecoverableError(`payload does not match the ${queue} contract`);
  }
  const payload = parsed.data;
  const attempt = job.attemptsMade + 1;
  const logger = app.logger.child({ queue, jobId: payload.jobId, attempt });
  const tracker = new JobTracker(app, payload.jobId);
  const tracked = handler.tracked !== false;
  if (tracked) await tracker.started(attempt);
  try {
    const result = await handler.run(payload as never, { app, tracker, logger, attempt });
    if (tracked) await tracker.succeeded(result?.output, result?.usage);
    return result?.output ?? null;
  } catch (error) {
    // The caller sees a code and a safe message naming the job; the raw error is logged just below under its id.
    const record = toErrorRecord(error, `job ${payload.jobId}`);
    const permanent = error instanceof TesseraError && PERMANENT_CODES.has(error.code);
    // Losing PostgreSQL is the database's failure, not the job's: on the last attempt too its rows stay open, and the
    // reconciler runs a job the queue failed with its row still open again (RECONCILE_MAX_REQUEUES times).
    const final = permanent || (attempt >= (job.opts.attempts ?? 1) && !databaseUnavailable(error));
    logger.warn({ err: error, code: record.code, final }, "job failed");
    // The job's FAILED comes last, so whoever sees it also sees what the handler marked (the asset FAILED).
    try {
      if (final) await handler.onFinalFailure?.(payload as never, record, app);
    } finally {
      if (tracked) await tracker.failed(record, final);
    }
    if (permanent) throw new UnrecoverableError(record.message);
    throw error;
  }
}

export type WorkerPool = ReturnType<typeof startWorkerPool>;
