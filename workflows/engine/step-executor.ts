import { trace } from "@opentelemetry/api";
import type { AppContext } from "../../services/app/app-context.ts";
import { untilAborted } from "../../services/core/abort.ts";
import { Prisma, SQL_UTC_NOW, sql, type Run, type StepRun } from "../../services/core/database.ts";
import { ErrorCode, TesseraError, toErrorRecord, type ErrorRecord } from "../../services/core/errors.ts";
import type { Logger } from "../../services/core/logger.ts";
import { workflowStepDuration } from "../../services/observability/metrics.ts";
import { evaluateForEach, type ExpressionSite } from "../dsl/expression.ts";
import { durationMs } from "../dsl/workflow-schema.ts";
import { findStepType } from "../steps/step-registry.ts";
import { StepDirective } from "../steps/step-type.ts";
import { workflowLimits } from "../workflow-limits.ts";
import { definitionOf, dependenciesOf, expressionLocator } from "./definition-cache.ts";
import { advanceRun, finishItem, finishStepAlone, needsOnly, type NextStep } from "./run-coordinator.ts";
import { insertMapItems } from "./run-store.ts";
import { scopeOf, type StepState } from "./run-planner.ts";
import { createStepContext } from "./step-context.ts";
import { publishRunEvent, RunEventType, TERMINAL_RUN_STATUSES, TERMINAL_STEP_STATUSES } from "./run-events.ts";
import { enqueueSteps, stepOf } from "./step-jobs.ts";

export type StepJob = { runId: string; stepRunId: string; projectId: string };

type ClaimedRow = StepRun & {
  runProjectId: string;
  runStatus: Run["status"];
  runWorkflowVersionId: string;
  runInput: Run["input"];
  /** A map's item: of the map row's input, the item's step (`{ step }`; not the map's items, one claim per item). */
  parentInput: StepRun["input"];
  claimed: boolean;
  /** The run's top-level rows, for a top-level step; null for a map's item. */
  runSteps: StepState[] | null;
  /** What the claim was asked with (several claims share a statement): the job's attempt and project. */
  claimAttempt: number;
  claimProject: string;
};

/**
 * Steps' claims, on node-postgres (`sql`: through Prisma even a raw statement costs about a millisecond of the event
 * loop, and this one runs once per step), several in one statement: $1 the StepRuns' ids, $2 each one's attempt, $3
 * each one's job's project (the same row at most once). For each row: the step row and what is needed of its run,
 * the claim (QUEUED -> RUNNING, unless the run ended or is another project's) and, for a top-level step, the run's
 * top-level rows the advance after it plans from.
 */
const CLAIM_STEPS = `
    WITH req AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS q(id, attempt, project)),
    cur AS (
      SELECT s.*, r."projectId" AS "runProjectId", r.status::text AS "runStatus", r."workflowVersionId" AS "runWorkflowVersionId", r.input AS "runInput",
        req.attempt AS "claimAttempt", req.project AS "claimProject"
      FROM req JOIN "StepRun" s ON s.id = req.id JOIN "Run" r ON r.id = s."runId"),
    claimed AS (
      UPDATE "StepRun" s SET status = 'RUNNING', attempts = cur."claimAttempt", "startedAt" = COALESCE(s."startedAt", (now() AT TIME ZONE 'UTC')), error = NULL
      FROM cur WHERE s.id = cur.id AND s.status = 'QUEUED' AND cur."runProjectId" = cur."claimProject" AND cur."runStatus" NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
      RETURNING s.id)
    SELECT cur.*, EXISTS (SELECT 1 FROM claimed WHERE claimed.id = cur.id) AS claimed,
      (SELECT jsonb_build_object('step', p.input->'step') FROM "StepRun" p WHERE p.id = cur."parentId") AS "parentInput",
      CASE WHEN cur."parentId" IS NULL THEN COALESCE((
        SELECT json_agg(json_build_object('id', t.id, 'stepId', t."stepId", 'key', t.key, 'parentId', t."parentId",
          'status', t.status, 'input', t.input, 'output', t.output, 'error', t.error))
        FROM "StepRun" t WHERE t."runId" = cur."runId" AND t."parentId" IS NULL), '[]'::json) END AS "runSteps"
    FROM cur`;

type ClaimWait = { job: StepJob; attempt: number; resolve: (row: ClaimedRow | undefined) => void; reject: (error: unknown) => void };
/** Per app, the claims asked for in this turn, sent together when it ends (`claimStep`). */
const claimsWaiting = new WeakMap<AppContext, ClaimWait[]>();

/**
 * A step's claim. The claims of one turn (a worker's slots handed jobs together, a map's items) go in one statement:
 * one round trip and one commit for all of them, and their STEP_STARTED events leave in one message. Each row is
 * claimed on its own terms, as alone; a row asked for twice in one turn (a re-delivered job beside its first) is
 * claimed the second time by a statement of its own: the row's lock orders the two, and only one of them wins it.
 */
function claimStep(app: AppContext, job: StepJob, attempt: number): Promise<ClaimedRow | undefined> {
  let waiting = claimsWaiting.get(app);
  if (waiting?.some((wait) => wait.job.stepRunId === job.stepRunId)) return claimNow(app, [{ job, attempt }]).then((rows) => rows[0]);
  if (!waiting) {
    const batch: ClaimWait[] = (waiting = []);
    claimsWaiting.set(app, batch);
    setImmediate(() => {
      if (claimsWaiting.get(app) === batch) claimsWaiting.delete(app);
      claimNow(app, batch).then(
        (rows) => {
          const byId = new Map(rows.map((row) => [row.id, row]));
          for (const wait of batch) wait.resolve(byId.get(wait.job.stepRunId));
        },
        (error: unknown) => {
          for (const wait of batch) wait.reject(error);
        },
      );
    });
  }
  const batch = waiting;
  return new Promise((resolve, reject) => batch.push({ job, attempt, resolve, reject }));
}

function claimNow(app: AppContext, claims: { job: StepJob; attempt: number }[]) {
  return sql<ClaimedRow>(app.db, CLAIM_STEPS, [
    claims.map((claim) => claim.job.stepRunId),
    claims.map((claim) => claim.attempt),
    claims.map((claim) => claim.job.projectId),
  ]);
}

/**
 * Runs one step: the body of a `workflow-step` job. Idempotent on the
 * StepRun row: a step that already finished is never run again (a retried or
 * re-delivered job only advances the run), and every write that finishes a
 * step only applies while the row is still RUNNING, so a cancel wins.
 */
export async function executeStep(app: AppContext, job: StepJob, attempt: number, logger: Logger, options: { runHere?: boolean } = {}): Promise<NextStep | undefined> {
  // One statement (with the other claims of this turn): the step row and what is needed of its run, the claim (QUEUED ->
  // RUNNING, unless the run ended or is another project's) and, for a top-level step, the run's top-level rows.
  const found = await claimStep(app, job, attempt);
  if (!found || found.runProjectId !== job.projectId) return;
  const { runProjectId, runStatus, runWorkflowVersionId, runInput, parentInput, claimed, runSteps, claimAttempt: _attempt, claimProject: _project, ...row } = found;
  const run = { id: row.runId, projectId: runProjectId, status: runStatus, workflowVersionId: runWorkflowVersionId, input: runInput };
  if (TERMINAL_RUN_STATUSES.has(run.status) || row.status === "WAITING") return;
  // Finished already: this is a re-delivered job, maybe after a crash before the run moved on, or while its worker
  // ran a step this one readied (`runHere`): that step, RUNNING without a job, gets one.
  if (TERMINAL_STEP_STATUSES.has(row.status)) {
    await handOnStepsRunHere(app, { ...run, projectId: job.projectId }, row);
    return advanceRun(app, run.id, { requeue: true });
  }
  const definition = await definitionOf(app, run.workflowVersionId);
  // Only a map's item has a parent, whose input holds the item's step.
  const parent = row.parentId ? { id: row.parentId, input: parentInput } : null;
  const step = stepOf(definition, row, parent);
  const type = step && findStepType(step.uses);
  if (!step || !type) throw new TesseraError(ErrorCode.INVALID_WORKFLOW, `step "${row.key}" has no runnable definition`);
  // The worker's span for this step, named by it (never its input).
  trace.getActiveSpan()?.updateName(`workflow.step ${row.key}`);
  trace.getActiveSpan()?.setAttributes({ "tessera.workflow.step": row.key, "tessera.workflow.step_type": step.uses });

  if (!claimed) {
    // RUNNING already: an attempt that died. A fan-out or child run that was already started is not started again.
    if (row.status !== "RUNNING") return;
    if (await alreadyHandedOver(app, row, Boolean(type.templateKey))) return advanceRun(app, run.id, { requeue: true });
    // Raw statement on the hot path: one round trip, where Prisma's updateMany wraps one in BEGIN/COMMIT.
    const started = await app.db.$executeRaw`
      UPDATE "StepRun" SET status = 'RUNNING', attempts = ${attempt}, "startedAt" = COALESCE("startedAt", ${SQL_UTC_NOW}), error = NULL
      WHERE id = ${row.id} AND status IN ('QUEUED', 'RUNNING')`;
    if (started === 0) return;
  }
  publishRunEvent(app, { runId: run.id, type: RunEventType.STEP_STARTED, stepId: row.stepId, stepKey: row.key, status: "RUNNING", message: `attempt ${attempt}` });

  const timeoutMs = step.timeout === undefined ? workflowLimits().WORKFLOW_DEFAULT_STEP_TIMEOUT_MS : durationMs(step.timeout);
  const abort = new AbortController();
  const stopWatching = watchForCancel(app, run.id, abort);
  const timer = setTimeout(() => abort.abort(new TesseraError(ErrorCode.TIMEOUT, `step "${row.key}" took longer than ${timeoutMs} ms`)), timeoutMs);
  const context = createStepContext(app, { run, row, attempt, logger, signal: abort.signal });

  let result: unknown;
  const attemptStarted = performance.now();
  const observeAttempt = (status: string) => workflowStepDuration.observe({ type: step.uses, status }, (performance.now() - attemptStarted) / 1000);
  try {
    result = await untilAborted(type.run(row.input as never, context), abort.signal);
    observeAttempt(result instanceof StepDirective ? "handed_over" : "succeeded");
  } catch (error) {
    observeAttempt("failed");
    const record = toErrorRecord(error, `step ${row.key} of run ${run.id}`);
    // The raw text stays in the logs, under the step and run the record names.
    if (!(error instanceof TesseraError)) logger.warn({ err: error, runId: run.id, stepRunId: row.id, step: row.key }, "step failed with an internal error");
    await app.db.stepRun.updateMany({
      where: { id: row.id, status: "RUNNING" },
      data: { status: "QUEUED", error: record as Prisma.InputJsonValue },
    });
    publishRunEvent(app, { runId: run.id, type: RunEventType.STEP_RETRYING, stepId: row.stepId, stepKey: row.key, error: record });
    // The raw error rides along as `cause`: the worker pool reads it to tell a lost database from the step's own failure.
    throw error instanceof TesseraError ? error : Object.assign(new TesseraError(record.code, record.message, record.details), { cause: error });
  } finally {
    clearTimeout(timer);
    stopWatching();
  }

  if (result instanceof StepDirective) {
    // Where a map's item step sits in the file, for errors about its expressions.
    const site = { path: ["steps", definition.steps.findIndex((candidate) => candidate.id === row.stepId), "with", type.templateKey ?? "step", "with"], locate: expressionLocator(app, run.workflowVersionId) };
    const scope = scopeOf(run.input, runSteps ?? (await app.db.stepRun.findMany({ where: { runId: run.id, parentId: null } })));
    if (await handOver(app, run, row, result, scope, site)) return;
  } else {
    const output = type.output.safeParse(result);
    if (!output.success) throw new TesseraError(ErrorCode.INTERNAL, `step type ${type.uses} returned an output that breaks its schema`);
    const bytes = JSON.stringify(output.data ?? null).length;
    const limit = workflowLimits().WORKFLOW_MAX_VALUE_BYTES;
    if (bytes > limit) throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `step "${row.key}" output is ${bytes} bytes as JSON; the limit is ${limit}`);
    const finished = { stepRunId: row.id, output: output.data, stepId: row.stepId, key: row.key };
    // A top-level step's end is written by the advance that follows it, in the statement that locks the run.
    if (runSteps) return advanceRun(app, run.id, { finished: { ...finished, snapshot: { ...run, steps: runSteps } }, runHere: options.runHere });
    // A map's item feeds its map; the run moves on when the map is done.
    if (parent) return void (await finishItem(app, run, parent, finished));
    if (await finishStepAlone(app, run.id, finished)) {
      publishRunEvent(app, { runId: run.id, type: RunEventType.STEP_FINISHED, stepId: row.stepId, stepKey: row.key, status: "SUCCEEDED", output: output.data });
    }
  }
  await advanceRun(app, run.id);
}

/** The last attempt failed: the step fails, and so does its run. */
export async function failStep(app: AppContext, job: StepJob, error: ErrorRecord) {
  const row = await app.db.stepRun.findUnique({ where: { id: job.stepRunId } });
  if (!row) return;
  const { count } = await app.db.stepRun.updateMany({
    where: { id: row.id, status: { in: ["QUEUED", "RUNNING", "PENDING"] } },
    data: { status: "FAILED", error: error as Prisma.InputJsonValue, finishedAt: new Date() },
  });
  if (count) publishRunEvent(app, { runId: row.runId, type: RunEventType.STEP_FAILED, stepId: row.stepId, stepKey: row.key, status: "FAILED", error });
  // The job failed for stalling after its step had succeeded: its worker may have died running a step it readied.
  if (row.status === "SUCCEEDED") {
    const run = await app.db.run.findUnique({ where: { id: row.runId }, select: { id: true, projectId: true, workflowVersionId: true } });
    if (run) await handOnStepsRunHere(app, run, row);
  }
  // With `requeue`: a job failed for stalling may be one whose step had finished and whose worker died before it
  // queued the next step's job; that step is QUEUED in PostgreSQL and gets its job here.
  await advanceRun(app, row.runId, { requeue: true });
}

/**
 * The steps that only `finished` could ready, left RUNNING with no child rows or runs: the worker that ran them in
 * the finished step's job (`runHere`) may have died with it. Each gets its job (a live job under its id makes adding
 * it a no-op); its claim then runs it again, as a killed worker's step is.
 */
async function handOnStepsRunHere(app: AppContext, run: { id: string; projectId: string; workflowVersionId: string }, finished: StepRun) {
  if (finished.parentId) return;
  const definition = await definitionOf(app, run.workflowVersionId);
  const dependencies = dependenciesOf(run.workflowVersionId, definition);
  const candidates = definition.steps.filter((step) => needsOnly(dependencies, step.id, finished.stepId)).map((step) => step.id);
  if (!candidates.length) return;
  const rows = await app.db.$queryRaw<StepRun[]>`
    SELECT s.* FROM "StepRun" s WHERE s."runId" = ${run.id} AND s."parentId" IS NULL AND s.status = 'RUNNING' AND s."stepId" = ANY(${candidates})
      AND NOT EXISTS (SELECT 1 FROM "StepRun" c WHERE c."parentId" = s.id) AND NOT EXISTS (SELECT 1 FROM "Run" r WHERE r."parentStepRunId" = s.id)`;
  if (rows.length) await enqueueSteps(app, { runId: run.id, projectId: run.projectId, definition, rows }, rows);
}

/** A fan-out whose items exist, or a step whose child run exists, was handed to the engine; other children (an agent's calls) are not. */
async function alreadyHandedOver(app: AppContext, row: StepRun, fansOut: boolean): Promise<boolean> {
  const [children, childRuns] = await Promise.all([
    fansOut ? app.db.stepRun.count({ where: { parentId: row.id } }) : 0,
    app.db.run.count({ where: { parentStepRunId: row.id } }),
  ]);
  return children > 0 || childRuns > 0;
}

/**
 * The step returned a directive: pause, fan out, or wait for a child run. True when nothing else is to be done: a
 * map's first items, up to its concurrency, are made QUEUED and get their jobs here (the run itself does not change);
 * a map of steps without side effects (`transform`) is finished by the advance that follows.
 */
async function handOver(
  app: AppContext,
  run: { id: string; projectId: string; workflowVersionId: string },
  row: StepRun,
  result: StepDirective,
  scope: ReturnType<typeof scopeOf>,
  site: ExpressionSite,
): Promise<boolean> {
  const directive = result.directive;
  if (directive.kind === "wait") {
    const { count } = await app.db.stepRun.updateMany({ where: { id: row.id, status: "RUNNING" }, data: { status: "WAITING" } });
    if (count) publishRunEvent(app, { runId: row.runId, type: RunEventType.STEP_WAITING, stepId: row.stepId, stepKey: row.key, status: "WAITING", message: (row.input as { prompt?: string } | null)?.prompt });
    return false;
  }
  if (directive.kind === "fan-out") {
    // Each item's input is fixed now, with `item` and `index` in scope: one bounded evaluation for all items.
    const inputs = await evaluateForEach(directive.template.with ?? {}, scope, directive.items.map((item, index) => ({ item, index })), site);
    // As the planner feeds a map: its own `concurrency` items at a time; items without side effects all at once, in the advance.
    const inline = Boolean(findStepType(directive.template.uses)?.inline);
    const concurrency = (row.input as { concurrency?: number } | null)?.concurrency ?? 1;
    const { made, queued } = await insertMapItems(app.db, row, inputs, inline ? 0 : concurrency);
    // No items made (a re-delivered job, or none to make) or items the advance finishes: the advance goes on.
    if (!made || inline) return false;
    const definition = await definitionOf(app, run.workflowVersionId);
    await enqueueSteps(app, { runId: run.id, projectId: run.projectId, definition, rows: [row] }, queued);
    return true;
  }
  // child-run: the step stays RUNNING until the child run finishes.
  return false;
}

/**
 * Aborts the step when its run is cancelled (the cancel is published on the run's topic). The steps of a run that
 * run in this process share one subscription, kept a while after the last of them ends, so a chain of steps does
 * not subscribe and unsubscribe once per step.
 */
function watchForCancel(app: AppContext, runId: string, abort: AbortController): () => void {
  let watch = cancelWatches.get(runId);
  if (!watch || watch.app !== app) {
    const events = app.events.subscribe("run", runId)[Symbol.asyncIterator]();
    const created: CancelWatch = { app, aborts: new Set(), close: () => void events.return?.() };
    watch = created;
    cancelWatches.set(runId, created);
    void (async () => {
      while (true) {
        const next = await events.next();
        if (next.done) return;
        if (next.value.type === RunEventType.RUN_STATUS && next.value.status === "CANCELLED") {
          for (const waiting of created.aborts) waiting.abort(new TesseraError(ErrorCode.CANCELLED, "the run was cancelled"));
        }
      }
    })().catch(() => {});
  }
  const current = watch;
  clearTimeout(current.idle);
  current.aborts.add(abort);
  return () => {
    current.aborts.delete(abort);
    if (current.aborts.size) return;
    current.idle = setTimeout(() => {
      if (current.aborts.size || cancelWatches.get(runId) !== current) return;
      cancelWatches.delete(runId);
      current.close();
    }, CANCEL_WATCH_LINGER_MS);
    current.idle.unref();
  };
}

type CancelWatch = { app: AppContext; aborts: Set<AbortController>; close: () => void; idle?: NodeJS.Timeout };
/** Run id -> the one subscription this process holds for its running steps. */
const cancelWatches = new Map<string, CancelWatch>();
/** How long a run's subscription outlives its last running step here: the next step of a chain comes within it. */
const CANCEL_WATCH_LINGER_MS = 2_000;
