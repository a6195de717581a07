import type { AppContext } from "../../services/app/app-context.ts";
import { Prisma, SQL_UTC_NOW, type Run, type StepRun } from "../../services/core/database.ts";
import { ErrorCode, TesseraError, type ErrorRecord } from "../../services/core/errors.ts";
import { workflowStepDuration } from "../../services/observability/metrics.ts";
import { tracer, tracingEnabled } from "../../services/observability/tracing.ts";
import { workflowLimits } from "../workflow-limits.ts";
import { warmExpressionPool } from "../dsl/expression.ts";
import { findStepType } from "../steps/step-registry.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import { definitionOf, dependenciesOf, expressionLocator } from "./definition-cache.ts";
import { EvaluationMemo, type EvaluateAt } from "./evaluation-memo.ts";
import { publishRunEvent, RunEventType, TERMINAL_RUN_STATUSES, TERMINAL_STEP_STATUSES } from "./run-events.ts";
import { mapsToCollect, planRun, type RunPlan, type StepState } from "./run-planner.ts";
import { advancePlanned, finishMapItems, lockMaps, lockRun, readRun, writePlan, type FinishedStep } from "./run-store.ts";
import { enqueueSteps, removeStepJobs, retryOf, stepJobId, stepOf } from "./step-jobs.ts";

/** What an advance's plans read of the run row. */
type PlannedRun = Pick<Run, "id" | "status" | "input" | "workflowVersionId">;

export type AdvanceOptions = {
  requeue?: boolean;
  /**
   * With `finished`: one step this advance readies, that only the finished step could ready (it needs that step
   * alone) and that has one attempt, is not queued but handed back, for the caller to run at once in its own job
   * (see the workflow-step handler). Its committed QUEUED row is the checkpoint.
   */
  runHere?: boolean;
  /**
   * The step whose job calls this has succeeded with `output`: its SUCCEEDED is written by the statement that
   * locks the run, so the step's end and what follows it commit together. `snapshot` (the run and its top-level
   * rows, read when the step was claimed) is what the first, unlocked plan starts from, with this step's end
   * applied, instead of a fresh read: when it is stale, the locked plan misses an evaluation and both are made
   * again from a fresh read.
   */
  finished?: FinishedStep & { stepId: string; key: string; snapshot: PlannedRun & { steps: StepState[] } };
};

/** Plans made again at most this often when the rows keep changing under one advance; then the call fails and is retried. */
const MAX_PLANS = 5;

/**
 * Moves a run forward from what PostgreSQL says: lets the planner decide
 * (queue the steps whose dependencies are done, skip those whose `if` is
 * false, feed a map's items within its concurrency, collect finished maps,
 * finish the run), writes that under the run row's lock, and after the
 * commit tells subscribers, queues the jobs and finishes the parent step of
 * a child run. The result is the same however often it is called, which is
 * what makes a crash anywhere safe: whoever comes next calls it again.
 *
 * Expressions are never evaluated while the lock is held: a first plan from
 * rows read without locks evaluates what it needs (EvaluationMemo); then the
 * run is locked, read again and planned again with those outcomes only. If
 * that plan needs an evaluation the first did not make (a step finished in
 * between), nothing is written and both plans are made again.
 */
export async function advanceRun(app: AppContext, runId: string, options: AdvanceOptions = {}): Promise<NextStep | undefined> {
  warmExpressionPool(); // the steps after this one will likely need it
  let memo: EvaluationMemo | undefined;
  const planFor = async <Row extends StepState>(run: PlannedRun, rows: Row[], evaluate: EvaluateAt) => {
    const definition = await definitionOf(app, run.workflowVersionId);
    const plan = await planRun({
      definition,
      run,
      rows,
      dependencies: dependenciesOf(run.workflowVersionId, definition),
      maxValueBytes: workflowLimits().WORKFLOW_MAX_VALUE_BYTES,
      requeue: options.requeue,
      evaluate,
      inline: true,
    });
    return { plan, definition };
  };
  for (let attempt = 1; ; attempt++) {
    const finished = attempt === 1 ? options.finished : undefined;
    const snapshot = finished ? withStepFinished(finished) : await readRun(app.db, runId);
    if (!snapshot) return;
    memo ??= new EvaluationMemo(expressionLocator(app, snapshot.workflowVersionId));
    const first = TERMINAL_RUN_STATUSES.has(snapshot.status) ? undefined : await planFor(snapshot, snapshot.steps, memo.evaluate);
    // The common case in one statement: the plan from the snapshot is written if the run is still as it read it.
    if (first && attempt === 1 && !fanOutRunning(first.definition, snapshot.steps)) {
      const written = await advancePlanned(app.db, runId, { run: snapshot.status, rows: snapshot.steps }, first.plan, finished).catch(async (error: unknown) => {
        if (finished && (await finishStepAlone(app, runId, finished))) publishStepFinished(app, runId, finished);
        throw error;
      });
      if (!written.found) return;
      if (finished && written.finishedNow) publishStepFinished(app, runId, finished);
      if (written.applied) {
        const run = { id: runId, projectId: written.projectId, parentStepRunId: written.parentStepRunId, workflowVersionId: snapshot.workflowVersionId };
        return afterAdvance(app, run, first.plan, first.definition, options.runHere ? finished?.stepId : undefined);
      }
      // The run changed since the snapshot; the step's end is stored: plan again from a fresh read, under the lock.
      continue;
    }
    memo.missed = false;
    const locked = memo;
    let stepFinished = false;
    const advanced = await app.db
      .$transaction(
        async (tx) => {
          const run = await lockRun(tx, runId, finished);
          if (!run) return null;
          stepFinished = run.finishedNow;
          // Tell the parent again: the call that finished this run may have died before it did.
          if (TERMINAL_RUN_STATUSES.has(run.status)) return { run, plan: null, definition: null };
          const definition = await definitionOf(app, run.workflowVersionId);
          const rows = await lockMaps(tx, run.steps, mapsToCollect(definition, run.steps));
          const { plan } = await planFor(run, rows, locked.remembered);
          if (locked.missed) return "plan again" as const;
          await writePlan(tx, run.id, plan);
          return { run, plan, definition };
        },
        { timeout: 60_000, maxWait: 30_000 },
      )
      .catch(async (error: unknown) => {
        // The step's end must not be lost with the advance: store it alone; the job's retry only advances the run.
        if (finished) stepFinished = await finishStepAlone(app, runId, finished);
        if (stepFinished && finished) publishStepFinished(app, runId, finished);
        throw error;
      });
    if (stepFinished && finished) publishStepFinished(app, runId, finished);
    if (advanced === "plan again") {
      if (attempt < MAX_PLANS) continue;
      throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `run ${runId} kept changing while it was planned ${MAX_PLANS} times; it is advanced again on retry`);
    }
    if (!advanced) return;
    return afterAdvance(app, advanced.run, advanced.plan, advanced.definition);
  }
}

/** A step to run at once in the caller's job, as its job would run it. */
export type NextStep = { runId: string; stepRunId: string; projectId: string };

/**
 * Of the steps a plan queued, one that needs `finishedStepId` alone (so no other advance can have readied it) and
 * has one attempt (the caller's job cannot give it more): the caller runs it without a job of its own.
 */
function runnableHere(definition: WorkflowDefinition, dependencies: Map<string, Set<string>>, queued: StepState[], finishedStepId: string): StepState | undefined {
  return queued.find((row) => {
    if (row.parentId !== null || !needsOnly(dependencies, row.stepId, finishedStepId)) return false;
    const step = definition.steps.find((candidate) => candidate.id === row.stepId);
    return Boolean(step && !findStepType(step.uses)?.templateKey && retryOf(step).attempts === 1);
  });
}

/** The step needs exactly one other step. */
export function needsOnly(dependencies: Map<string, Set<string>>, stepId: string, neededStepId: string): boolean {
  const needed = dependencies.get(stepId);
  return needed?.size === 1 && needed.has(neededStepId);
}

/** After an advance's commit: tell subscribers, drop the jobs of cancelled steps, queue the ready ones, tell a parent run. */
async function afterAdvance(
  app: AppContext,
  run: Pick<Run, "id" | "projectId" | "parentStepRunId" | "workflowVersionId">,
  plan: RunPlan<StepState> | null,
  definition: WorkflowDefinition | null,
  runHereAfter?: string,
): Promise<NextStep | undefined> {
  let here: StepState | undefined;
  if (plan && definition) {
    if (plan.inlined.length) recordInlineSteps(run, plan.inlined);
    for (const event of plan.events) publishRunEvent(app, event);
    if (plan.cancelled.length) await removeStepJobs(app, plan.cancelled.map((row) => ({ runId: run.id, key: row.key })));
    if (runHereAfter) here = runnableHere(definition, dependenciesOf(run.workflowVersionId, definition), plan.queued, runHereAfter);
    const queued = plan.queued.filter((row) => row !== here);
    // With `requeue`, rows left QUEUED by a crash come too: job ids make queueing one again a no-op when the job exists.
    if (queued.length) await enqueueSteps(app, { runId: run.id, projectId: run.projectId, definition, rows: plan.rows }, queued);
  }
  const ended = !plan || plan.transition?.status === "SUCCEEDED" || plan.transition?.status === "FAILED";
  if (ended && run.parentStepRunId) await finishParentStep(app, run.id, run.parentStepRunId);
  return here && { runId: run.id, stepRunId: here.id, projectId: run.projectId };
}

/**
 * A map (a fan-out step) is RUNNING with items still to finish (or none read yet): its items are read and planned
 * under its row's lock (`lockMaps`), which the one-statement advance does not take, so such an advance takes the
 * locked path. A map whose items have all ended does not: an ended item never changes again, so the snapshot's items
 * are what the lock would read, and the map's own status is among those the one statement compares (this is the
 * advance that ends a map, after its last item).
 */
function fanOutRunning(definition: WorkflowDefinition, rows: StepState[]): boolean {
  let open: Set<string> | undefined;
  for (const row of rows) {
    if (row.parentId !== null || row.status !== "RUNNING") continue;
    if (!findStepType(definition.steps.find((step) => step.id === row.stepId)?.uses ?? "")?.templateKey) continue;
    if (!open) {
      // Maps with an item not ended yet, and maps with items at all.
      open = new Set();
      const withItems = new Set<string>();
      for (const item of rows) {
        if (item.parentId === null) continue;
        withItems.add(item.parentId);
        if (!TERMINAL_STEP_STATUSES.has(item.status)) open.add(item.parentId);
      }
      for (const candidate of rows) if (candidate.parentId === null && !withItems.has(candidate.id)) open.add(candidate.id);
    }
    if (open.has(row.id)) return true;
  }
  return false;
}

/** The claimed snapshot with the finished step's end applied, as the first plan reads it. */
function withStepFinished(finished: NonNullable<AdvanceOptions["finished"]>): PlannedRun & { steps: StepState[] } {
  const { snapshot } = finished;
  return { ...snapshot, steps: snapshot.steps.map((row) => (row.id === finished.stepRunId ? { ...row, status: "SUCCEEDED", output: finished.output as StepState["output"] } : row)) };
}

/** A step's SUCCEEDED on its own, while the row is still RUNNING (a cancel wins): true when it applied. */
export async function finishStepAlone(app: AppContext, runId: string, finished: FinishedStep): Promise<boolean> {
  const count = await app.db.$executeRaw`
    UPDATE "StepRun" SET status = 'SUCCEEDED', output = ${JSON.stringify(finished.output ?? null)}::jsonb, "finishedAt" = ${SQL_UTC_NOW}
    WHERE id = ${finished.stepRunId} AND "runId" = ${runId} AND status = 'RUNNING'`;
  return count > 0;
}

function publishStepFinished(app: AppContext, runId: string, finished: FinishedStep & { stepId: string; key: string }) {
  publishRunEvent(app, { runId, type: RunEventType.STEP_FINISHED, stepId: finished.stepId, stepKey: finished.key, status: "SUCCEEDED", output: finished.output });
}

/** Steps finished inside an advance show as attempts too: a span each (under the advance's) and the step metric. */
function recordInlineSteps(run: Pick<Run, "id" | "projectId">, inlined: { row: StepState; uses: string }[]) {
  for (const { row, uses } of inlined) {
    workflowStepDuration.observe({ type: uses, status: "succeeded" }, 0);
    if (!tracingEnabled()) continue;
    tracer
      .startSpan(`workflow.step ${row.key}`, {
        attributes: {
          "tessera.workflow.run_id": run.id,
          "tessera.workflow.step_run_id": row.id,
          "tessera.project.id": run.projectId,
          "tessera.attempt": 1,
          "tessera.workflow.step": row.key,
          "tessera.workflow.step_type": uses,
          "tessera.workflow.inline": true,
        },
      })
      .end();
  }
}

/** A child run is done: its `workflow` step in the parent run finishes the same way, and the parent moves on. */
async function finishParentStep(app: AppContext, childRunId: string, parentStepRunId: string) {
  const child = await app.db.run.findUniqueOrThrow({ where: { id: childRunId } });
  const parentStep = await app.db.stepRun.findUnique({ where: { id: parentStepRunId } });
  if (!parentStep) return;
  if (parentStep.status === "RUNNING") {
    const succeeded = child.status === "SUCCEEDED";
    const childError = (child.error as ErrorRecord | null) ?? { code: ErrorCode.CANCELLED, message: "the child run was cancelled" };
    const error: ErrorRecord = { code: childError.code, message: `child run ${child.id}: ${childError.message}`, details: { childRunId: child.id } };
    // An agent's tool call answers the model with the run's id beside its output.
    const output = parentStep.parentId ? { runId: child.id, output: child.output ?? {} } : (child.output ?? {});
    const { count } = await app.db.stepRun.updateMany({
      where: { id: parentStep.id, status: "RUNNING" },
      data: succeeded
        ? { status: "SUCCEEDED", output: output as Prisma.InputJsonValue, finishedAt: new Date() }
        : { status: "FAILED", error: error as Prisma.InputJsonValue, finishedAt: new Date() },
    });
    if (count)
      publishRunEvent(app, {
        runId: parentStep.runId,
        type: succeeded ? RunEventType.STEP_FINISHED : RunEventType.STEP_FAILED,
        stepId: parentStep.stepId,
        stepKey: parentStep.key,
        status: succeeded ? "SUCCEEDED" : "FAILED",
        ...(succeeded ? {} : { error }),
      });
  }
  // The row is an agent's tool call: the agent (its parent row) runs again and goes on from the answer.
  if (parentStep.parentId) return resumeAgentStep(app, parentStep.runId, parentStep.parentId, parentStep.id);
  await advanceRun(app, parentStep.runId);
}

/** Queues the step that waits for a tool call's child run again, under a job id of its own (the first job finished). */
async function resumeAgentStep(app: AppContext, runId: string, stepRunId: string, callRowId: string) {
  const [run, row] = await Promise.all([app.db.run.findUnique({ where: { id: runId } }), app.db.stepRun.findUnique({ where: { id: stepRunId } })]);
  if (!run || !row || row.status !== "RUNNING" || TERMINAL_RUN_STATUSES.has(run.status)) return advanceRun(app, runId);
  const definition = await definitionOf(app, run.workflowVersionId);
  const parent = row.parentId ? await app.db.stepRun.findUnique({ where: { id: row.parentId } }) : null;
  const retry = retryOf(stepOf(definition, row, parent));
  const jobId = `${stepJobId(runId, row.key)}_resume_${callRowId}`;
  await app.queues.enqueue(
    "workflow-step",
    { jobId, runId, stepRunId: row.id, projectId: run.projectId },
    { jobId, attempts: retry.attempts, backoff: { type: "exponential", delay: retry.backoffMs } },
  );
}

/**
 * A map's item succeeded: its end and the next items to queue in one statement under the map row's lock
 * (`finishMapItems`), instead of the whole run's, so items of a wide map do not queue behind one lock for every
 * finished item; the run advances only when the map is done or an item failed.
 *
 * Group commit: the items of one map that end in this process while its last statement is on its way (or in the same
 * turn) are written together by the next one: one lock of the map row and one commit (a WAL flush, milliseconds on a
 * disk) for all of them, where each item's statement held the map's lock across a flush of its own. Each item's
 * promise settles only after the statement that stored its end committed (and its follow-ups: its STEP_FINISHED, the
 * jobs of the items it queued, the run's advance when the map is done), so its job is acknowledged after its end is
 * durable, as before. One statement per map at a time in this process; other processes' take turns on the lock.
 */
export function finishItem(
  app: AppContext,
  run: { id: string; projectId: string; workflowVersionId: string },
  map: Pick<StepRun, "id" | "input">,
  finished: FinishedStep & { stepId: string; key: string },
): Promise<void> {
  let batches = itemBatches.get(app);
  if (!batches) itemBatches.set(app, (batches = new Map()));
  let batch = batches.get(map.id);
  if (!batch) {
    batch = { run, map, waiting: [], writing: false };
    batches.set(map.id, batch);
  }
  const current = batch;
  const ended = new Promise<void>((resolve, reject) => current.waiting.push({ finished, resolve, reject }));
  // The first item waits for the rest of this turn; while a statement is on its way, the next one follows it.
  if (!current.writing && current.waiting.length === 1) setImmediate(() => void writeItemBatch(app, batches, current));
  return ended;
}

type ItemEnd = { finished: FinishedStep & { stepId: string; key: string }; resolve: () => void; reject: (error: unknown) => void };
type ItemBatch = { run: { id: string; projectId: string; workflowVersionId: string }; map: Pick<StepRun, "id" | "input">; waiting: ItemEnd[]; writing: boolean };
/** Per app, map row id -> the items of that map waiting for their statement (`finishItem`). */
const itemBatches = new WeakMap<AppContext, Map<string, ItemBatch>>();

async function writeItemBatch(app: AppContext, batches: Map<string, ItemBatch>, batch: ItemBatch): Promise<void> {
  if (batch.writing || !batch.waiting.length) return;
  const ends = batch.waiting;
  batch.waiting = [];
  batch.writing = true;
  const { run, map } = batch;
  let fed: Awaited<ReturnType<typeof finishMapItems>>;
  try {
    fed = await finishMapItems(app.db, { runId: run.id, mapId: map.id, items: ends.map((end) => end.finished) });
  } catch (error) {
    // No item's end must be lost: each is stored alone; its job's retry feeds the map.
    await Promise.all(
      ends.map(async (end) => {
        if (await finishStepAlone(app, run.id, end.finished).catch(() => false)) publishStepFinished(app, run.id, end.finished);
        end.reject(error);
      }),
    );
    return nextItemBatch(app, batches, batch);
  }
  // Committed: the next items of this map may go while these items' follow-ups run.
  nextItemBatch(app, batches, batch);
  try {
    const applied = new Set(fed.finished);
    // Published in one turn: one message for all of them (the event bus sends a turn's events on a channel together).
    for (const end of ends) if (applied.has(end.finished.stepRunId)) publishStepFinished(app, run.id, end.finished);
    if (fed.queued.length) {
      const definition = await definitionOf(app, run.workflowVersionId);
      await enqueueSteps(app, { runId: run.id, projectId: run.projectId, definition, rows: [{ ...map, stepId: "", key: "", parentId: null }] }, fed.queued);
    }
    if (fed.done) await advanceRun(app, run.id);
    for (const end of ends) end.resolve();
  } catch (error) {
    // The ends are stored; each job's retry finds its item done and advances the run with `requeue`.
    for (const end of ends) end.reject(error);
  }
}

function nextItemBatch(app: AppContext, batches: Map<string, ItemBatch>, batch: ItemBatch) {
  batch.writing = false;
  if (batch.waiting.length) void writeItemBatch(app, batches, batch);
  else if (batches.get(batch.map.id) === batch) batches.delete(batch.map.id);
}
