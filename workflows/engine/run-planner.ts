import type { Run, StepRun } from "../../services/core/database.ts";
import { ErrorCode, TesseraError, toErrorRecord, type ErrorRecord } from "../../services/core/errors.ts";
import { asExpression, evaluateValue, type ExpressionScope } from "../dsl/expression.ts";
import { stepDependencies } from "../dsl/validate-workflow.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import { findStepType } from "../steps/step-registry.ts";
import type { StepTemplate, StepType } from "../steps/step-type.ts";
import type { EvaluateAt } from "./evaluation-memo.ts";
import { RunEventType, TERMINAL_STEP_STATUSES, type RunEventDraft } from "./run-events.ts";

/** What the planner reads of a StepRun row; the store hands it whole rows. */
export type StepState = Pick<StepRun, "id" | "stepId" | "key" | "parentId" | "status" | "input" | "output" | "error">;

/** A row's new state, as the store writes it (`started` stamps startedAt and one attempt, `finished` stamps finishedAt). */
export type StepChange = { status: StepRun["status"]; input?: unknown; output?: unknown; error?: ErrorRecord; started?: boolean; finished?: boolean };

export type RunTransition =
  | { status: "RUNNING" | "WAITING" }
  | { status: "SUCCEEDED"; output: unknown; error: null }
  | { status: "FAILED"; output: null; error: ErrorRecord };

export type RunPlanInput<Row extends StepState> = {
  definition: WorkflowDefinition;
  run: { id: string; status: Run["status"]; input: unknown };
  /** Every row of the run; a running map's items as read under the map row's lock. */
  rows: Row[];
  /** Step id -> the steps it needs; derived from the definition when not given. */
  dependencies?: Map<string, Set<string>>;
  /** Largest step input, as JSON, in bytes. */
  maxValueBytes: number;
  /** Repair pass: rows left QUEUED are queued again, their job may have been lost in a crash. */
  requeue?: boolean;
  /** How `if`, `with` and `outputs` are evaluated; by default in the expression processes, with their limits. */
  evaluate?: EvaluateAt;
  /**
   * Steps whose type has `inline` (no side effects: `transform`) finish in this plan instead of being queued,
   * top-level steps and a map's items alike, and what needs them becomes ready in the same pass.
   */
  inline?: boolean;
};

export type RunPlan<Row extends StepState> = {
  /** The run goes from QUEUED to RUNNING. */
  started: boolean;
  /** The run's new status, when it changes (RUNNING after QUEUED is `started`). */
  transition?: RunTransition;
  /** Row id -> what to write. */
  changes: Map<string, StepChange>;
  /** Every row as it is once the plan is written. */
  rows: Row[];
  /** Rows that need a job. */
  queued: Row[];
  /** Rows cancelled because the run failed: their jobs go. */
  cancelled: Row[];
  /** Rows finished in this plan without a job (`inline`), with their step type. */
  inlined: { row: Row; uses: string }[];
  /** What subscribers are told, in order. */
  events: RunEventDraft[];
};

const DONE = new Set(["SUCCEEDED", "SKIPPED"]);
const BROKEN = new Set(["FAILED", "CANCELLED"]);
const ACTIVE = new Set(["QUEUED", "RUNNING", "WAITING"]);

/** The scope expressions see: the run's inputs and the outputs of finished steps. */
export function scopeOf(input: unknown, rows: StepState[]): ExpressionScope {
  const steps: ExpressionScope["steps"] = {};
  for (const row of rows) if (row.parentId === null) steps[row.stepId] = { output: row.output ?? null, status: row.status };
  return { inputs: (input ?? {}) as Record<string, unknown>, steps };
}

/** The default evaluation: bounded, off this event loop (expression-pool.ts). */
const evaluateAt: EvaluateAt = (value, scope, path) => evaluateValue(value, scope, { path });

/** A map's item index, from its key `step[3]`. */
export function itemIndex(row: Pick<StepState, "key">): number {
  return Number(/\[(\d+)\]$/.exec(row.key)?.[1] ?? -1);
}

/**
 * Running fan-out steps (maps) whose items the planner must look at: those
 * with items, or with none to make. The store reads their items under the
 * map row's lock, since finished items feed the map under that lock.
 */
export function mapsToCollect<Row extends StepState>(definition: WorkflowDefinition, rows: Row[]): Row[] {
  return rows.filter((row) => {
    if (row.parentId !== null || row.status !== "RUNNING") return false;
    // Only fan-out steps own their children; an agent's call rows are its own business.
    if (!findStepType(definition.steps.find((step) => step.id === row.stepId)?.uses ?? "")?.templateKey) return false;
    return rows.some((child) => child.parentId === row.id) || (row.input as { items?: unknown[] } | null)?.items?.length === 0;
  });
}

/**
 * Decides how a run moves on from the state of its rows: which steps start
 * (with their evaluated, checked input), which are skipped or fail, which
 * map items are fed, which maps finish, and the run's own status. Reads and
 * writes nothing; the same state always gives the same plan.
 */
export async function planRun<Row extends StepState>(request: RunPlanInput<Row>): Promise<RunPlan<Row>> {
  const { definition, run } = request;
  const rows = new Map(request.rows.map((row) => [row.key, row]));
  const changes = new Map<string, StepChange>();
  const events: RunEventDraft[] = [];
  const queuedKeys: string[] = [];
  const update = (row: Row, change: StepChange) => {
    const updated = { ...row, status: change.status } as Row;
    if ("input" in change) updated.input = change.input as Row["input"];
    if ("output" in change) updated.output = change.output as Row["output"];
    if ("error" in change) updated.error = change.error as Row["error"];
    rows.set(updated.key, updated);
    changes.set(row.id, { ...changes.get(row.id), ...change });
    return updated;
  };
  const fail = (row: Row, error: ErrorRecord) => {
    update(row, { status: "FAILED", error, finished: true });
    events.push({ runId: run.id, type: RunEventType.STEP_FAILED, stepId: row.stepId, stepKey: row.key, status: "FAILED", error });
  };
  const queue = (row: Row, input?: unknown) => {
    update(row, input === undefined ? { status: "QUEUED" } : { status: "QUEUED", input });
    queuedKeys.push(row.key);
  };
  const inlined: { key: string; uses: string }[] = [];
  /** A step with no side effects: its output now, stored by the same commit that readies it (its one attempt). */
  const finishInline = (row: Row, type: StepType & { inline: NonNullable<StepType["inline"]> }, input: unknown) => {
    let output;
    try {
      output = type.output.safeParse(type.inline(input as never));
    } catch (error) {
      return fail(row, toErrorRecord(error, `step ${row.key} of run ${run.id}`));
    }
    if (!output.success) return fail(row, { code: ErrorCode.INTERNAL, message: `step type ${type.uses} returned an output that breaks its schema` });
    const bytes = JSON.stringify(output.data ?? null).length;
    if (bytes > request.maxValueBytes) {
      return fail(row, { code: ErrorCode.PAYLOAD_TOO_LARGE, message: `step "${row.key}" output is ${bytes} bytes as JSON; the limit is ${request.maxValueBytes}` });
    }
    update(row, { status: "SUCCEEDED", input, output: output.data, started: true, finished: true });
    events.push({ runId: run.id, type: RunEventType.STEP_STARTED, stepId: row.stepId, stepKey: row.key, status: "RUNNING", message: "attempt 1" });
    events.push({ runId: run.id, type: RunEventType.STEP_FINISHED, stepId: row.stepId, stepKey: row.key, status: "SUCCEEDED", output: output.data });
    inlined.push({ key: row.key, uses: type.uses });
  };
  const inlineType = (uses: string | undefined) => {
    const type = request.inline && uses !== undefined ? findStepType(uses) : undefined;
    return type?.inline ? (type as StepType & { inline: NonNullable<StepType["inline"]> }) : undefined;
  };

  const started = run.status === "QUEUED";
  if (started) events.push({ runId: run.id, type: RunEventType.RUN_STATUS, status: "RUNNING" });

  // Top-level steps: queue or skip the ready ones; a skip can make others ready, so repeat.
  const dependencies = request.dependencies ?? stepDependencies(definition);
  const evaluate = request.evaluate ?? evaluateAt;
  for (let changed = true; changed; ) {
    changed = false;
    for (const [index, step] of definition.steps.entries()) {
      const row = rows.get(step.id);
      if (!row || row.status !== "PENDING") continue;
      const needed = [...(dependencies.get(step.id) ?? [])].map((id) => rows.get(id)?.status);
      if (!needed.every((status) => status !== undefined && DONE.has(status))) continue;
      changed = true;
      const scope = scopeOf(run.input, [...rows.values()]);
      try {
        if (step.if !== undefined) {
          const condition = typeof step.if === "boolean" ? step.if : await evaluate(asExpression(step.if), scope, ["steps", index, "if"]);
          if (!condition) {
            update(row, { status: "SKIPPED", finished: true });
            events.push({ runId: run.id, type: RunEventType.STEP_SKIPPED, stepId: row.stepId, stepKey: row.key, status: "SKIPPED" });
            continue;
          }
        }
        const type = findStepType(step.uses);
        if (!type) throw new TesseraError(ErrorCode.INVALID_WORKFLOW, `step type "${step.uses}" is not available in this worker`);
        const { [type.templateKey ?? "\0"]: template, ...rest } = step.with;
        const evaluated = { ...((await evaluate(rest, scope, ["steps", index, "with"])) as Record<string, unknown>) };
        if (type.templateKey && template !== undefined) evaluated[type.templateKey] = template;
        const bytes = JSON.stringify(evaluated).length;
        if (bytes > request.maxValueBytes) {
          fail(row, { code: ErrorCode.PAYLOAD_TOO_LARGE, message: `step "${step.id}" input is ${bytes} bytes as JSON; the limit is ${request.maxValueBytes}` });
          continue;
        }
        const input = type.with.safeParse(evaluated);
        if (!input.success) {
          fail(row, {
            code: ErrorCode.BAD_USER_INPUT,
            message: `step "${step.id}" got input that does not fit ${step.uses}: ${input.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`,
            details: { issues: input.error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message })) },
          });
          continue;
        }
        const inline = inlineType(step.uses);
        if (inline) finishInline(row, inline, input.data);
        else queue(row, input.data);
      } catch (error) {
        const record = toErrorRecord(error);
        fail(row, { ...record, code: record.code === ErrorCode.INTERNAL ? ErrorCode.BAD_USER_INPUT : record.code });
      }
    }

    // Maps: feed items within the concurrency, collect results in item order. A map that ends here readies what needs it.
    for (const map of mapsToCollect(definition, [...rows.values()])) {
      const childrenOf = () => [...rows.values()].filter((child) => child.parentId === map.id).sort((a, b) => itemIndex(a) - itemIndex(b));
      // Items of a step with no side effects finish at once, whatever the concurrency (their input was evaluated at the fan-out).
      const template = (map.input as { step?: StepTemplate } | null)?.step;
      const inline = inlineType(template?.uses);
      if (inline) {
        for (const child of childrenOf().filter((item) => item.status === "PENDING")) {
          const input = inline.with.safeParse(child.input);
          if (input.success) finishInline(child, inline, input.data);
          else fail(child, { code: ErrorCode.BAD_USER_INPUT, message: `item ${itemIndex(child)} got input that does not fit ${inline.uses}: ${input.error.issues.map((issue) => issue.message).join("; ")}` });
        }
      }
      const children = childrenOf();
      const failed = children.find((child) => BROKEN.has(child.status));
      if (failed) {
        const error = (failed.error as ErrorRecord | null) ?? { code: ErrorCode.CANCELLED, message: "cancelled" };
        fail(map, { code: error.code, message: `item ${itemIndex(failed)}: ${error.message}`, details: { item: itemIndex(failed) } });
        changed = true;
        continue;
      }
      if (children.every((child) => DONE.has(child.status))) {
        update(map, { status: "SUCCEEDED", output: { results: children.map((child) => child.output ?? null) }, finished: true });
        events.push({ runId: run.id, type: RunEventType.STEP_FINISHED, stepId: map.stepId, stepKey: map.key, status: "SUCCEEDED" });
        changed = true;
        continue;
      }
      const concurrency = (map.input as { concurrency?: number }).concurrency ?? 1;
      const active = children.filter((child) => ACTIVE.has(child.status)).length;
      for (const child of children.filter((item) => item.status === "PENDING").slice(0, Math.max(0, concurrency - active))) queue(child);
    }
  }

  // The run: failed as soon as a step failed, done when every step is.
  const transition = await runTransition(definition, run, [...rows.values()], evaluate);
  const cancelled: Row[] = [];
  if (transition?.status === "FAILED") {
    for (const row of rows.values()) {
      if (TERMINAL_STEP_STATUSES.has(row.status)) continue;
      cancelled.push(update(row, { status: "CANCELLED", finished: true }));
    }
  }
  if (transition) events.push({ runId: run.id, type: RunEventType.RUN_STATUS, ...transition });

  const rowsAtEnd = [...rows.values()];
  // In the order they were queued, so a map's items start in item order.
  const queued = queuedKeys.map((key) => rows.get(key)!).filter((row) => row.status === "QUEUED");
  if (request.requeue) queued.push(...rowsAtEnd.filter((row) => row.status === "QUEUED" && !queuedKeys.includes(row.key)));
  return { started, transition, changes, rows: rowsAtEnd, queued, cancelled, events, inlined: inlined.map(({ key, uses }) => ({ row: rows.get(key)!, uses })) };
}

/** The run's status from its top-level steps: outputs are evaluated once every step is done. */
async function runTransition(
  definition: WorkflowDefinition,
  run: RunPlanInput<StepState>["run"],
  rows: StepState[],
  evaluate: EvaluateAt,
): Promise<RunTransition | undefined> {
  const top = rows.filter((row) => row.parentId === null);
  const failedStep = top.find((row) => BROKEN.has(row.status));
  if (failedStep) {
    const cause = (failedStep.error as ErrorRecord | null) ?? { code: ErrorCode.CANCELLED, message: "cancelled" };
    return { status: "FAILED", output: null, error: { code: cause.code, message: `step "${failedStep.key}" failed: ${cause.message}`, details: { stepId: failedStep.stepId } } };
  }
  if (top.every((row) => DONE.has(row.status))) {
    try {
      return { status: "SUCCEEDED", output: await evaluate(definition.outputs, scopeOf(run.input, rows), ["outputs"]), error: null };
    } catch (cause) {
      const limit = cause instanceof TesseraError && cause.code === ErrorCode.EXPRESSION_LIMIT;
      return { status: "FAILED", output: null, error: { code: limit ? cause.code : ErrorCode.BAD_USER_INPUT, message: `outputs: ${(cause as Error).message}`, ...(limit ? { details: cause.details } : {}) } };
    }
  }
  const busy = rows.some((row) => row.status === "QUEUED" || row.status === "RUNNING");
  const status = !busy && rows.some((row) => row.status === "WAITING") ? "WAITING" : "RUNNING";
  // QUEUED -> RUNNING is the run's start, told apart.
  return status === run.status || (run.status === "QUEUED" && status === "RUNNING") ? undefined : { status };
}
