import { Queue, Worker } from "bullmq";
import type { AppContext } from "../app/app-context.ts";
import { ErrorCode, TesseraError, type ErrorRecord } from "../core/errors.ts";
import type { JobKind, StepRun } from "../core/database.ts";
import type { QueueName } from "../queue/job-payloads.ts";
import { definitionOf, dependenciesOf } from "../../workflows/engine/definition-cache.ts";
import { failStep } from "../../workflows/engine/step-executor.ts";
import { enqueueAdvance, enqueueSteps, stepJobId, stepOf } from "../../workflows/engine/step-jobs.ts";
import { TERMINAL_RUN_STATUSES } from "../../workflows/engine/run-events.ts";
import { findStepType } from "../../workflows/steps/step-registry.ts";
import { jobHandlers } from "./handlers/index.ts";
import type { JobHandler } from "./job-handler.ts";
import { markLostJobRows } from "./lost-jobs.ts";
import { removeOrphanBlobs } from "../assets/orphan-blobs.ts";
import { relayProjectEvents } from "../queue/project-events.ts";
import { backfillSpokenPhoneKeys } from "../search/spoken-backfill.ts";

/** The queue the reconciler's passes are scheduled on; its scheduler id is the same in every worker, so one pass runs at a time. */
export const RECONCILE_QUEUE = "reconcile";
const SCHEDULER_ID = "reconciler";

/** BullMQ states in which a job is still going to run (or running). */
const LIVE_STATES = new Set(["active", "waiting", "delayed", "prioritized", "waiting-children"]);
const QUEUE_OF_KIND: Record<JobKind, QueueName> = { INGEST: "ingest", GENERATE: "generate" };
/** Rows looked at per pass and kind: a backlog is worked through over several passes. */
const BATCH = 500;

export type ReconcileOptions = {
  /** Rows (Job, Run, StepRun) untouched for less than this are left alone: their producer may still be adding the job. */
  graceMs: number;
  /** Blobs written less than this ago are left alone, even when no asset references them: an upload may be in flight. */
  blobGraceMs: number;
  /** A row re-enqueued this many times and lost again fails with WORKER_LOST instead. */
  maxRequeues: number;
  /** Only rows of these projects (tests share one database between queue prefixes); default: every project. */
  projectIds?: string[];
};

export type ReconcileReport = {
  jobsRequeued: number;
  jobsFailed: number;
  stepsRequeued: number;
  stepsFailed: number;
  runsAdvanced: number;
  blobsRemoved: number;
  /** Spoken assets ingested before the phone-key index that got their keys (services/search/spoken-backfill.ts). */
  spokenKeysBackfilled: number;
  /** Project events left in the outbox (their process stopped, or Redis refused them) now queued. */
  projectEventsRelayed: number;
};

export function reconcileOptionsOf(app: AppContext): ReconcileOptions {
  return { graceMs: app.config.RECONCILE_GRACE_MS, blobGraceMs: app.config.ORPHAN_BLOB_GRACE_MS, maxRequeues: app.config.RECONCILE_MAX_REQUEUES };
}

/**
 * The reconciler: every RECONCILE_INTERVAL_MS, one worker (whichever takes the scheduled BullMQ job) compares
 * PostgreSQL with the queue. The rows are written first and the BullMQ job added after the commit, so a crash,
 * a Redis restart that lost its last second, or a failure BullMQ decided on its own can leave a row that promises
 * work no job will do. Such a row is either re-enqueued under its own job id (adding it twice is one job) or,
 * lost too often, failed with WORKER_LOST. It also removes blobs that no asset references, and queues the project
 * events left in the outbox.
 */
export async function startReconciler(app: AppContext) {
  const everyMs = app.config.RECONCILE_INTERVAL_MS;
  if (everyMs <= 0) return { async close() {} };
  const connection = app.redis;
  const prefix = app.config.QUEUE_PREFIX;
  const queue = new Queue(RECONCILE_QUEUE, { connection, prefix });
  queue.on("error", (error) => app.logger.warn({ err: error }, "reconcile queue error"));
  const worker = new Worker(
    RECONCILE_QUEUE,
    async () => {
      const report = await reconcileOnce(app, reconcileOptionsOf(app));
      if (Object.values(report).some((count) => count > 0)) app.logger.warn(report, "reconciler repaired rows left without a job");
      return report;
    },
    { connection, prefix, concurrency: 1, lockDuration: Math.max(60_000, app.config.WORKER_LOCK_MS) },
  );
  worker.on("error", (error) => app.logger.error({ err: error }, "reconciler worker error"));
  worker.on("failed", (_job, error) => app.logger.error({ err: error }, "a reconcile pass failed; the next one tries again"));
  // Each worker upserts the same scheduler: one schedule, however many workers.
  await queue
    .upsertJobScheduler(SCHEDULER_ID, { every: everyMs }, { name: "reconcile", opts: { removeOnComplete: 50, removeOnFail: 50, attempts: 1 } })
    .catch((error) => app.logger.error({ err: error }, "could not schedule the reconciler; the next worker start tries again"));
  return {
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}

/** One pass; safe to run at any time and from several workers at once. */
export async function reconcileOnce(app: AppContext, options: ReconcileOptions): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    jobsRequeued: 0,
    jobsFailed: 0,
    stepsRequeued: 0,
    stepsFailed: 0,
    runsAdvanced: 0,
    blobsRemoved: 0,
    spokenKeysBackfilled: 0,
    projectEventsRelayed: 0,
  };
  await reconcileJobs(app, options, report);
  await reconcileRuns(app, options, report);
  report.projectEventsRelayed = await relayProjectEvents(app, options.projectIds ? { projectIds: options.projectIds } : "all");
  // The blob store is shared by every project: only an unscoped pass (production) sweeps it, or a test's own store.
  report.blobsRemoved = await removeOrphanBlobs(app, { olderThanMs: options.blobGraceMs });
  report.spokenKeysBackfilled = await backfillSpokenPhoneKeys(app.db, { batch: BATCH, projectIds: options.projectIds });
  return report;
}

/** True when the row may be re-enqueued once more; counted in Redis per row. */
async function mayRequeue(app: AppContext, rowId: string, options: ReconcileOptions): Promise<boolean> {
  const key = `${app.config.QUEUE_PREFIX}:reconciler:requeues`;
  const count = await app.redis.hincrby(key, rowId, 1);
  await app.redis.expire(key, 7 * 24 * 3600);
  return count <= options.maxRequeues;
}

function lostError(reason: string, details: Record<string, unknown> = {}): ErrorRecord {
  return new TesseraError(ErrorCode.WORKER_LOST, reason, details).toRecord();
}

/**
 * The job's state in BullMQ; a finished job whose row says otherwise is removed, so it can be added again under its
 * id. A FAILED job is one of those too: its failure never reached its row (the processor's write failed while
 * PostgreSQL was down, or the worker died marking it), so the failure may well have been that outage's, not the
 * job's; it runs again, as a lost job does, until it has been lost `maxRequeues` times.
 */
async function jobState(app: AppContext, queueName: QueueName, jobId: string): Promise<"live" | "missing"> {
  const queue = app.queues.queue(queueName);
  const state = await queue.getJobState(jobId);
  if (LIVE_STATES.has(state)) return "live";
  if (state === "completed" || state === "failed") await queue.remove(jobId).catch(() => 0);
  return "missing";
}

/** Ingest and generate jobs: a QUEUED or RUNNING row with no live BullMQ job. */
async function reconcileJobs(app: AppContext, options: ReconcileOptions, report: ReconcileReport) {
  const cutoff = new Date(Date.now() - options.graceMs);
  const rows = await app.db.job.findMany({
    where: { status: { in: ["QUEUED", "RUNNING"] }, updatedAt: { lt: cutoff }, ...(options.projectIds ? { projectId: { in: options.projectIds } } : {}) },
    select: { id: true, kind: true, projectId: true, assetId: true },
    orderBy: { updatedAt: "asc" },
    take: BATCH,
  });
  for (const row of rows) {
    const queueName = QUEUE_OF_KIND[row.kind];
    const handler = jobHandlers[queueName] as JobHandler<QueueName> | undefined;
    if (!handler) continue;
    const state = await jobState(app, queueName, row.id);
    if (state === "live") continue;
    // A job finishes its row before BullMQ lets go of it: a row still open now was really left behind.
    const current = await app.db.job.findUnique({ where: { id: row.id }, select: { status: true } });
    if (!current || !["QUEUED", "RUNNING"].includes(current.status)) continue;
    const payload = { jobId: row.id, projectId: row.projectId, ...(row.kind === "INGEST" ? { assetId: row.assetId } : {}) };
    const log = app.logger.child({ queue: queueName, jobId: row.id });
    if ((row.kind !== "INGEST" || row.assetId) && (await mayRequeue(app, row.id, options))) {
      log.warn("job row has no job in the queue: enqueueing it again");
      await app.queues.enqueue(queueName, payload as never, row.kind === "GENERATE" ? { jobId: row.id, attempts: 1 } : { jobId: row.id });
      report.jobsRequeued++;
      continue;
    }
    const reason = `its job was lost from the queue more than ${options.maxRequeues} times (workers, Redis or PostgreSQL stopped); it is not run again`;
    log.error("job row left without a job: failing it");
    await markLostJobRows(app, queueName, handler, payload as never, lostError(reason, { reconciled: true }));
    report.jobsFailed++;
  }
}

/**
 * Workflow runs: each step that should have a job (QUEUED, or RUNNING without a child run or items it handed over
 * to) gets it back; a step whose job BullMQ failed without the step being marked fails; a run in which nothing
 * can move any more (the advance after a step, a resume or a child's end was lost) is advanced.
 */
async function reconcileRuns(app: AppContext, options: ReconcileOptions, report: ReconcileReport) {
  const cutoff = new Date(Date.now() - options.graceMs);
  const runs = await app.db.run.findMany({
    where: { status: { in: ["QUEUED", "RUNNING", "WAITING"] }, createdAt: { lt: cutoff }, ...(options.projectIds ? { projectId: { in: options.projectIds } } : {}) },
    select: { id: true },
    orderBy: { createdAt: "asc" },
    take: BATCH,
  });
  for (const { id } of runs) {
    try {
      await reconcileRun(app, id, cutoff, options, report);
    } catch (error) {
      app.logger.error({ err: error, runId: id }, "could not reconcile a run; the next pass tries again");
    }
  }
}

/**
 * A RUNNING step without a job of its own may be running in the job of the step before it (the engine runs a step
 * that needs only the one that just finished right there, and so on down a chain): it is busy while the job of the
 * first step of that chain with a job is live.
 */
async function runByLiveJob(app: AppContext, runId: string, step: StepRun, steps: StepRun[], dependencies: Map<string, Set<string>>): Promise<boolean> {
  let current = step;
  for (let hops = 0; hops < steps.length; hops++) {
    const needed = dependencies.get(current.stepId);
    if (needed?.size !== 1) return false;
    const [neededStepId] = needed;
    const before = steps.find((row) => row.parentId === null && row.stepId === neededStepId);
    if (!before) return false;
    const state = await app.queues.queue("workflow-step").getJobState(stepJobId(runId, before.key));
    if (LIVE_STATES.has(state)) return true;
    current = before;
  }
  return false;
}

async function reconcileRun(app: AppContext, runId: string, cutoff: Date, options: ReconcileOptions, report: ReconcileReport) {
  const run = await app.db.run.findUnique({ where: { id: runId }, include: { steps: true } });
  if (!run || TERMINAL_RUN_STATUSES.has(run.status)) return;
  const steps = run.steps;
  // Something happened within the grace period: whoever did it is still moving the run.
  const touched = (step: StepRun) => [step.createdAt, step.startedAt, step.finishedAt].some((at) => at && at >= cutoff);
  if (steps.some(touched)) return;
  const definition = await definitionOf(app, run.workflowVersionId);
  const byId = new Map(steps.map((step) => [step.id, step]));
  const childRuns = await app.db.run.findMany({ where: { parentStepRunId: { in: steps.map((step) => step.id) } }, select: { id: true, status: true, parentStepRunId: true } });

  let busy = false;
  const requeue: StepRun[] = [];
  for (const step of steps) {
    if (step.status === "WAITING") busy = true;
    if (step.status !== "QUEUED" && step.status !== "RUNNING") continue;
    const children = childRuns.filter((child) => child.parentStepRunId === step.id);
    if (step.status === "RUNNING" && children.length) {
      // A `workflow` step waits for its child run; a finished child whose parent step was never told is told again.
      const open = children.filter((child) => !TERMINAL_RUN_STATUSES.has(child.status));
      if (open.length) busy = true;
      else for (const child of children) await enqueueAdvance(app, child.id, run.projectId, `reconcile_${Date.now()}`);
      if (!open.length) report.runsAdvanced++;
      busy = true;
      continue;
    }
    // An agent waiting for the run one of its calls started holds no job: that call row is looked at itself.
    const waitsOnCall = steps.some((call) => call.parentId === step.id && call.status === "RUNNING" && childRuns.some((child) => child.parentStepRunId === call.id));
    if (step.status === "RUNNING" && waitsOnCall) {
      busy = true;
      continue;
    }
    const parent = step.parentId ? byId.get(step.parentId) : null;
    // A child row of a step that does not fan out is an agent's tool call: it runs inside its agent's job.
    if (parent && !findStepType(stepOf(definition, parent, parent.parentId ? byId.get(parent.parentId) : null)?.uses ?? "")?.templateKey) continue;
    const type = findStepType(stepOf(definition, step, parent)?.uses ?? "");
    if (step.status === "RUNNING" && type?.templateKey && steps.some((item) => item.parentId === step.id)) continue; // its items are looked at themselves
    const state = await jobState(app, "workflow-step", stepJobId(run.id, step.key));
    if (state === "live" || (step.status === "RUNNING" && (await runByLiveJob(app, run.id, step, steps, dependenciesOf(run.workflowVersionId, definition))))) {
      busy = true;
      continue;
    }
    const current = await app.db.stepRun.findUnique({ where: { id: step.id }, select: { status: true } });
    if (current?.status !== "QUEUED" && current?.status !== "RUNNING") continue;
    busy = true;
    const payload = { jobId: stepJobId(run.id, step.key), runId: run.id, stepRunId: step.id, projectId: run.projectId };
    if (await mayRequeue(app, step.id, options)) {
      app.logger.warn({ runId: run.id, step: step.key }, "workflow step has no job in the queue: enqueueing it again");
      requeue.push(step);
      continue;
    }
    const reason = `its job was lost from the queue more than ${options.maxRequeues} times (workers, Redis or PostgreSQL stopped); it is not run again`;
    await failStep(app, payload, lostError(reason, { reconciled: true }));
    report.stepsFailed++;
  }
  if (requeue.length) {
    await enqueueSteps(app, { runId: run.id, projectId: run.projectId, definition, rows: steps }, requeue);
    report.stepsRequeued += requeue.length;
  }
  if (!busy) {
    // Nothing of the run is queued, running or waiting, yet it is not finished: the advance that should follow was lost.
    app.logger.warn({ runId: run.id, status: run.status }, "workflow run has nothing in flight: advancing it");
    await enqueueAdvance(app, run.id, run.projectId, `reconcile_${Date.now()}`);
    report.runsAdvanced++;
  }
}
