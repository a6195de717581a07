import type { AppContext } from "../../services/app/app-context.ts";
import { Prisma, type StepRun } from "../../services/core/database.ts";
import { ErrorCode, TesseraError, toErrorRecord, type ErrorRecord } from "../../services/core/errors.ts";
import { asExpression, evaluateString, evaluateValue, type ExpressionScope } from "../dsl/expression.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import { findStepType } from "../steps/step-registry.ts";
import { workflowLimits } from "../workflow-limits.ts";
import { definitionOf, dependenciesOf } from "./definition-cache.ts";
import { publishRunEvent, RunEventType, TERMINAL_RUN_STATUSES, TERMINAL_STEP_STATUSES } from "./run-events.ts";
import { enqueueSteps, removeStepJobs } from "./step-jobs.ts";

type Db = Prisma.TransactionClient;
type Publish = Parameters<typeof publishRunEvent>[1];

/** The scope expressions see: the run's inputs and the outputs of finished steps. */
export function scopeOf(input: unknown, rows: StepRun[]): ExpressionScope {
  const steps: ExpressionScope["steps"] = {};
  for (const row of rows) if (row.parentId === null) steps[row.stepId] = { output: row.output ?? null, status: row.status };
  return { inputs: (input ?? {}) as Record<string, unknown>, steps };
}

/**
 * Moves a run forward from what PostgreSQL says: queues the steps whose
 * dependencies are done, skips those whose `if` is false, feeds a map's items
 * out within its concurrency, collects finished maps, and finishes the run.
 * The run row is locked for the duration, so concurrent calls take turns;
 * the result is the same however often it is called, which is what makes a
 * crash anywhere safe: whoever comes next calls it again.
 */
export async function advanceRun(app: AppContext, runId: string, options: { requeue?: boolean } = {}): Promise<void> {
  const queued: StepRun[] = [];
  const cancelled: StepRun[] = [];
  const events: Publish[] = [];
  let finishedWithParent: string | null = null;
  let definition: WorkflowDefinition | undefined;
  let projectId = "";
  let rowsAtEnd: StepRun[] = [];

  await app.db.$transaction(
    async (tx) => {
      await tx.$queryRaw`SELECT id FROM "Run" WHERE id = ${runId} FOR UPDATE`;
      const run = await tx.run.findUnique({ where: { id: runId }, include: { steps: true } });
      if (!run) return;
      if (TERMINAL_RUN_STATUSES.has(run.status)) {
        // Tell the parent again: the call that finished this run may have died before it did.
        finishedWithParent = run.parentStepRunId;
        return;
      }
      const version = await definitionOf(app, run.workflowVersionId);
      definition = version;
      projectId = run.projectId;
      const rows = new Map(run.steps.map((row) => [row.key, row]));
      const update = async (row: StepRun, data: Prisma.StepRunUpdateInput) => {
        const updated = await tx.stepRun.update({ where: { id: row.id }, data });
        rows.set(updated.key, updated);
        return updated;
      };
      const fail = async (row: StepRun, error: ErrorRecord) => {
        await update(row, { status: "FAILED", error: error as Prisma.InputJsonValue, finishedAt: new Date() });
        events.push({ runId, type: RunEventType.STEP_FAILED, stepId: row.stepId, stepKey: row.key, status: "FAILED", error });
      };

      if (run.status === "QUEUED") {
        await tx.run.update({ where: { id: runId }, data: { status: "RUNNING", startedAt: new Date() } });
        events.push({ runId, type: RunEventType.RUN_STATUS, status: "RUNNING" });
      }

      // Top-level steps: queue or skip the ready ones; a skip can make others ready, so repeat.
      const dependencies = dependenciesOf(run.workflowVersionId, version);
      const maxValueBytes = workflowLimits().WORKFLOW_MAX_VALUE_BYTES;
      for (let changed = true; changed; ) {
        changed = false;
        for (const step of version.steps) {
          const row = rows.get(step.id);
          if (!row || row.status !== "PENDING") continue;
          const needed = [...(dependencies.get(step.id) ?? [])].map((id) => rows.get(id)?.status);
          if (!needed.every((status) => status === "SUCCEEDED" || status === "SKIPPED")) continue;
          changed = true;
          const scope = scopeOf(run.input, [...rows.values()]);
          try {
            if (step.if !== undefined) {
              const condition = typeof step.if === "boolean" ? step.if : await evaluateString(asExpression(step.if), scope);
              if (!condition) {
                await update(row, { status: "SKIPPED", finishedAt: new Date() });
                events.push({ runId, type: RunEventType.STEP_SKIPPED, stepId: row.stepId, stepKey: row.key, status: "SKIPPED" });
                continue;
              }
            }
            const type = findStepType(step.uses);
            if (!type) throw new TesseraError(ErrorCode.INVALID_WORKFLOW, `step type "${step.uses}" is not available in this worker`);
            const { [type.templateKey ?? "\0"]: template, ...rest } = step.with;
            const evaluated = (await evaluateValue(rest, scope)) as Record<string, unknown>;
            if (type.templateKey && template !== undefined) evaluated[type.templateKey] = template;
            const bytes = JSON.stringify(evaluated).length;
            if (bytes > maxValueBytes) {
              await fail(row, { code: ErrorCode.PAYLOAD_TOO_LARGE, message: `step "${step.id}" input is ${bytes} bytes as JSON; the limit is ${maxValueBytes}` });
              continue;
            }
            const input = type.with.safeParse(evaluated);
            if (!input.success) {
              await fail(row, {
                code: ErrorCode.BAD_USER_INPUT,
                message: `step "${step.id}" got input that does not fit ${step.uses}: ${input.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`,
                details: { issues: input.error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message })) },
              });
              continue;
            }
            queued.push(await update(row, { status: "QUEUED", input: input.data as Prisma.InputJsonValue }));
          } catch (error) {
            const record = toErrorRecord(error);
            await fail(row, { ...record, code: record.code === ErrorCode.INTERNAL ? ErrorCode.BAD_USER_INPUT : record.code });
          }
        }
      }

      // Maps: feed items within the concurrency, collect results in item order.
      for (const row of [...rows.values()]) {
        if (row.parentId !== null || row.status !== "RUNNING") continue;
        // Only fan-out steps (map) own their children; an agent's call rows are its own business.
        if (!findStepType(version.steps.find((step) => step.id === row.stepId)?.uses ?? "")?.templateKey) continue;
        if (![...rows.values()].some((child) => child.parentId === row.id) && (row.input as { items?: unknown[] } | null)?.items?.length !== 0) continue;
        // Finished items feed the map under the map row's lock (feedMap): take it too, and read the items fresh.
        await tx.$queryRaw`SELECT id FROM "StepRun" WHERE id = ${row.id} FOR UPDATE`;
        const children = (await tx.stepRun.findMany({ where: { parentId: row.id } })).sort((a, b) => itemIndex(a) - itemIndex(b));
        for (const child of children) rows.set(child.key, child);
        const failed = children.find((child) => child.status === "FAILED" || child.status === "CANCELLED");
        if (failed) {
          const error = (failed.error as ErrorRecord | null) ?? { code: ErrorCode.CANCELLED, message: "cancelled" };
          await fail(row, { code: error.code, message: `item ${itemIndex(failed)}: ${error.message}`, details: { item: itemIndex(failed) } });
          continue;
        }
        if (children.every((child) => child.status === "SUCCEEDED" || child.status === "SKIPPED")) {
          const output = { results: children.map((child) => child.output ?? null) };
          await update(row, { status: "SUCCEEDED", output: output as Prisma.InputJsonValue, finishedAt: new Date() });
          events.push({ runId, type: RunEventType.STEP_FINISHED, stepId: row.stepId, stepKey: row.key, status: "SUCCEEDED" });
          continue;
        }
        const concurrency = (row.input as { concurrency?: number }).concurrency ?? 1;
        const active = children.filter((child) => child.status === "QUEUED" || child.status === "RUNNING" || child.status === "WAITING").length;
        const next = children.filter((child) => child.status === "PENDING").slice(0, Math.max(0, concurrency - active));
        for (const child of next) queued.push(await update(child, { status: "QUEUED" }));
      }

      // The run: failed as soon as a step failed, done when every step is.
      const top = [...rows.values()].filter((row) => row.parentId === null);
      const failedStep = top.find((row) => row.status === "FAILED" || row.status === "CANCELLED");
      let status: "RUNNING" | "WAITING" | "SUCCEEDED" | "FAILED" = "RUNNING";
      let output: unknown = null;
      let error: ErrorRecord | null = null;
      if (failedStep) {
        status = "FAILED";
        const cause = (failedStep.error as ErrorRecord | null) ?? { code: ErrorCode.CANCELLED, message: "cancelled" };
        error = { code: cause.code, message: `step "${failedStep.key}" failed: ${cause.message}`, details: { stepId: failedStep.stepId } };
      } else if (top.every((row) => row.status === "SUCCEEDED" || row.status === "SKIPPED")) {
        try {
          output = await evaluateValue(version.outputs, scopeOf(run.input, [...rows.values()]));
          status = "SUCCEEDED";
        } catch (cause) {
          status = "FAILED";
          error = { code: ErrorCode.BAD_USER_INPUT, message: `outputs: ${(cause as Error).message}` };
        }
      } else {
        const rowsNow = [...rows.values()];
        const busy = rowsNow.some((row) => row.status === "QUEUED" || row.status === "RUNNING");
        if (!busy && rowsNow.some((row) => row.status === "WAITING")) status = "WAITING";
      }

      if (status === "FAILED") {
        for (const row of rows.values()) {
          if (TERMINAL_STEP_STATUSES.has(row.status)) continue;
          cancelled.push(await update(row, { status: "CANCELLED", finishedAt: new Date() }));
        }
      }
      if (status === "SUCCEEDED" || status === "FAILED") {
        await tx.run.update({
          where: { id: runId },
          data: {
            status,
            output: status === "SUCCEEDED" ? (output as Prisma.InputJsonValue) : Prisma.DbNull,
            error: error ? (error as Prisma.InputJsonValue) : Prisma.DbNull,
            finishedAt: new Date(),
          },
        });
        events.push({ runId, type: RunEventType.RUN_STATUS, status, output, error });
        finishedWithParent = run.parentStepRunId;
      } else if (status !== run.status && !(run.status === "QUEUED" && status === "RUNNING")) {
        await tx.run.update({ where: { id: runId }, data: { status } });
        events.push({ runId, type: RunEventType.RUN_STATUS, status });
      }
      // After a crash, rows may be QUEUED without a job: a repair pass queues them again (job ids make that a no-op when the job exists).
      if (options.requeue) for (const row of rows.values()) if (row.status === "QUEUED" && !queued.includes(row)) queued.push(row);
      rowsAtEnd = [...rows.values()];
    },
    { timeout: 60_000, maxWait: 30_000 },
  );

  for (const event of events) publishRunEvent(app, event);
  if (cancelled.length) await removeStepJobs(app, cancelled);
  if (queued.length && definition) await enqueueSteps(app, { runId, projectId, definition, rows: rowsAtEnd }, queued);
  if (finishedWithParent) await finishParentStep(app, runId, finishedWithParent);
}

function itemIndex(row: StepRun): number {
  return Number(/\[(\d+)\]$/.exec(row.key)?.[1] ?? -1);
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
    const { count } = await app.db.stepRun.updateMany({
      where: { id: parentStep.id, status: "RUNNING" },
      data: succeeded
        ? { status: "SUCCEEDED", output: (child.output ?? {}) as Prisma.InputJsonValue, finishedAt: new Date() }
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
  await advanceRun(app, parentStep.runId);
}

/**
 * A map's item finished: queue the next items under the map row's lock
 * instead of the whole run's, so items of a wide map do not queue behind one
 * lock for every finished item. The run advances only when the map is done
 * or an item failed.
 */
export async function feedMap(app: AppContext, run: { id: string; projectId: string; workflowVersionId: string }, map: StepRun): Promise<void> {
  const { done, queued } = await app.db.$transaction(async (tx) => {
    const [locked] = await tx.$queryRaw<{ status: string; concurrency: number | null }[]>`
      SELECT status::text AS status, (input->>'concurrency')::int AS concurrency FROM "StepRun" WHERE id = ${map.id} FOR UPDATE`;
    if (!locked || locked.status !== "RUNNING") return { done: true, queued: [] };
    const counts = await tx.stepRun.groupBy({ by: ["status"], where: { parentId: map.id }, _count: { _all: true } });
    const count = (...statuses: string[]) => counts.filter((entry) => statuses.includes(entry.status)).reduce((sum, entry) => sum + entry._count._all, 0);
    const active = count("QUEUED", "RUNNING", "WAITING");
    const pending = count("PENDING");
    if (count("FAILED", "CANCELLED") > 0 || pending === 0) return { done: active === 0 || count("FAILED", "CANCELLED") > 0, queued: [] };
    const room = Math.max(0, (locked.concurrency ?? 1) - active);
    if (room === 0) return { done: false, queued: [] };
    const picked = await tx.$queryRaw<{ id: string }[]>`
      SELECT id FROM "StepRun" WHERE "parentId" = ${map.id} AND status = 'PENDING' ORDER BY length(key), key LIMIT ${room}`;
    const ids = picked.map((row) => row.id);
    await tx.stepRun.updateMany({ where: { id: { in: ids } }, data: { status: "QUEUED" } });
    return { done: false, queued: await tx.stepRun.findMany({ where: { id: { in: ids } } }) };
  });
  if (queued.length) {
    const definition = await definitionOf(app, run.workflowVersionId);
    await enqueueSteps(app, { runId: run.id, projectId: run.projectId, definition, rows: [map] }, queued);
  }
  if (done) await advanceRun(app, run.id);
}
