import { createHash, randomUUID } from "node:crypto";
import type { AppContext } from "../../services/app/app-context.ts";
import { Prisma, type Run, type WorkflowVersion } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { quotaExceededError } from "../../services/limits/limit-errors.ts";
import { evaluateString, expressionsIn, hasExpression, referencesOf } from "../dsl/expression.ts";
import { runInputSchema, type InputSpec } from "../dsl/input-types.ts";
import { parseWorkflow } from "../dsl/validate-workflow.ts";
import { expressionPosition, type SourcePath } from "../dsl/workflow-source.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import { findStepType } from "../steps/step-registry.ts";
import { syncFileTriggers } from "../triggers/trigger-service.ts";
import { workflowLimits } from "../workflow-limits.ts";
import { advanceRun } from "./run-coordinator.ts";
import { insertRun } from "./run-store.ts";
import { publishRunEvent, RunEventType, TERMINAL_RUN_STATUSES, TERMINAL_STEP_STATUSES } from "./run-events.ts";
import { enqueueAdvance, removeStepJobs } from "./step-jobs.ts";

/** JSON with sorted keys, so the same definition always hashes the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, entry]) => `${JSON.stringify(key)}:${canonicalJson(entry)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * Stores a new immutable version of a workflow, or returns the version that
 * already has the same content (same definition, whatever the formatting).
 * Nothing is stored when the file has problems.
 */
export async function publishWorkflow(app: AppContext, projectId: string, source: string): Promise<WorkflowVersion> {
  const definition = parseWorkflow(source);
  const version = await storeVersion(app, projectId, source, definition);
  // The file's `on:` triggers follow its latest version (re-publishing an older file changes no trigger).
  const latest = await app.db.workflowVersion.findFirst({ where: { workflowId: version.workflowId }, orderBy: { number: "desc" }, select: { id: true } });
  if (latest?.id === version.id) await syncFileTriggers(app, { id: version.workflowId, projectId }, definition);
  return version;
}

async function storeVersion(app: AppContext, projectId: string, source: string, definition: WorkflowDefinition): Promise<WorkflowVersion> {
  const contentHash = createHash("sha256").update(canonicalJson(definition)).digest("hex");
  for (let attempt = 0; ; attempt++) {
    try {
      return await app.db.$transaction(async (tx) => {
        const workflow = await tx.workflow.upsert({
          where: { projectId_slug: { projectId, slug: definition.slug } },
          create: { projectId, slug: definition.slug },
          update: {},
        });
        const existing = await tx.workflowVersion.findUnique({ where: { workflowId_contentHash: { workflowId: workflow.id, contentHash } } });
        if (existing) return existing;
        const latest = await tx.workflowVersion.findFirst({ where: { workflowId: workflow.id }, orderBy: { number: "desc" } });
        return tx.workflowVersion.create({
          data: {
            workflowId: workflow.id,
            number: (latest?.number ?? 0) + 1,
            definition: definition as unknown as Prisma.InputJsonValue,
            source,
            contentHash,
          },
        });
      });
    } catch (error) {
      // Two publishes raced for the same number or content: the next try sees the winner.
      if (attempt < 3 && error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") continue;
      throw error;
    }
  }
}

export type StartRunRequest = {
  projectId: string;
  slug: string;
  version?: number | null;
  input?: unknown;
  parentStepRunId?: string;
};

/** The version a run would pin: the one asked for, else the latest published. One statement when it exists. */
export async function findVersion(app: AppContext, projectId: string, slug: string, version?: number | null): Promise<WorkflowVersion> {
  const [found] = await app.db.$queryRaw<WorkflowVersion[]>`
    SELECT v.* FROM "WorkflowVersion" v JOIN "Workflow" w ON w.id = v."workflowId"
    WHERE w."projectId" = ${projectId} AND w.slug = ${slug} AND (${version ?? null}::int IS NULL OR v.number = ${version ?? null}::int)
    ORDER BY v.number DESC LIMIT 1`;
  if (found) return found;
  const workflow = await app.db.workflow.findUnique({ where: { projectId_slug: { projectId, slug } }, select: { id: true } });
  if (!workflow) throw new TesseraError(ErrorCode.NOT_FOUND, `no workflow "${slug}" in this project`);
  throw new TesseraError(ErrorCode.NOT_FOUND, `workflow "${slug}" has no version ${version ?? ""}`.trim());
}

/**
 * Starts a run of a published version: checks the input against the
 * declared input types (and that asset inputs exist in the project), then
 * stores the run with one row per step (within QUOTA_CONCURRENT_RUNS) and
 * hands it to a worker. A bad input, or a project at its quota, stores nothing.
 * The run and its rows are one statement with the quota check: stored whole or not at all.
 */
export async function startRun(app: AppContext, request: StartRunRequest): Promise<Run> {
  const version = await findVersion(app, request.projectId, request.slug, request.version);
  const definition = version.definition as unknown as WorkflowDefinition;
  const input = await checkRunInput(app, request.projectId, { definition, source: version.source }, request.input ?? {});
  const rows = definition.steps.map((step) => ({ id: randomUUID(), stepId: step.id, key: step.id, parentId: null, status: "PENDING" as const, input: null, output: null, error: null }));
  const newRun = { id: randomUUID(), projectId: request.projectId, workflowVersionId: version.id, input, parentStepRunId: request.parentStepRunId, rows };
  // A child run is part of its parent's run, which the quota already admitted.
  const stored = await insertRun(app.db, newRun, request.parentStepRunId ? null : app.config.QUOTA_CONCURRENT_RUNS);
  if ("refusedOpen" in stored) {
    const limit = app.config.QUOTA_CONCURRENT_RUNS;
    throw quotaExceededError(
      `this project has ${stored.refusedOpen} workflow runs queued or running, its limit (QUOTA_CONCURRENT_RUNS = ${limit}); start more when some end`,
      { quota: "QUOTA_CONCURRENT_RUNS", limit, used: stored.refusedOpen },
    );
  }
  const run = stored;
  try {
    await enqueueAdvance(app, run.id, run.projectId, "start");
  } catch (error) {
    await app.db.run.delete({ where: { id: run.id } }).catch(() => {});
    app.logger.error({ err: error }, "could not enqueue a workflow run");
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the job queue is unavailable; nothing was started, retry later");
  }
  publishRunEvent(app, { runId: run.id, type: RunEventType.RUN_STATUS, status: "QUEUED" });
  return run;
}

/** The `workflow` step's child run: started once per step row, however often the step's job runs. */
export async function startChildRun(
  app: AppContext,
  request: { projectId: string; parentStepRunId: string; slug: string; version?: number; input: Record<string, unknown> },
): Promise<string> {
  const existing = await app.db.run.findFirst({ where: { parentStepRunId: request.parentStepRunId } });
  if (existing) return existing.id;
  const depth = await nestingDepth(app, request.parentStepRunId);
  const limit = workflowLimits().WORKFLOW_MAX_DEPTH;
  if (depth >= limit) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, `workflow "${request.slug}" would nest ${depth + 1} runs deep; the limit is ${limit} (do workflows call each other in a loop?)`);
  }
  const run = await startRun(app, request);
  return run.id;
}

/** How many runs up the chain of `workflow` steps a step sits: 1 in a top-level run. */
async function nestingDepth(app: AppContext, stepRunId: string): Promise<number> {
  let depth = 0;
  let current: string | null = stepRunId;
  while (current && depth < 100) {
    const step: { run: { parentStepRunId: string | null } } | null = await app.db.stepRun.findUnique({
      where: { id: current },
      select: { run: { select: { parentStepRunId: true } } },
    });
    if (!step) break;
    depth++;
    current = step.run.parentStepRunId;
  }
  return depth;
}

function badInput(message: string, problems: { path: string; message: string }[]): TesseraError {
  return new TesseraError(ErrorCode.BAD_USER_INPUT, `${message}: ${problems.map((p) => `${p.path || "input"}: ${p.message}`).join("; ")}`, { problems });
}

async function checkRunInput(app: AppContext, projectId: string, version: { definition: WorkflowDefinition; source: string }, input: unknown) {
  const { definition } = version;
  const parsed = runInputSchema(definition.inputs).safeParse(input);
  if (!parsed.success) {
    throw badInput(
      "the run input does not fit the workflow's inputs",
      parsed.error.issues.map((issue) => ({
        path: issue.path.join("."),
        message: issue.code === "unrecognized_keys" ? `unknown input(s): ${issue.keys.join(", ")}` : issue.message,
      })),
    );
  }
  const values = parsed.data as Record<string, unknown>;
  const problems: { path: string; message: string }[] = [];
  for (const [name, spec] of Object.entries(definition.inputs) as [string, InputSpec][]) {
    if (spec.type !== "asset" || typeof values[name] !== "string") continue;
    const asset = await app.db.asset.findFirst({ where: { id: values[name] as string, projectId }, select: { modality: true } });
    if (!asset) problems.push({ path: name, message: "no such asset in this project" });
    else if (spec.modality && asset.modality !== spec.modality) problems.push({ path: name, message: `must be a ${spec.modality} asset, not ${asset.modality}` });
  }
  // Maps over inputs are sized now, before anything is stored.
  const limit = workflowLimits().WORKFLOW_MAX_MAP_ITEMS;
  for (const [index, step] of definition.steps.entries()) {
    const type = findStepType(step.uses);
    const items = step.with.items;
    if (!type?.templateKey || !hasExpression(items)) continue;
    const readsOnlyInputs = expressionsIn(items).every((body) => referencesOf(body).every(([root]) => root === "inputs"));
    if (!readsOnlyInputs) continue;
    // Bounded like every evaluation: an expression bomb here ends the call with EXPRESSION_LIMIT; other errors wait for the run.
    const site = { path: ["steps", index, "with", "items"], locate: async (path: SourcePath, body: string) => expressionPosition(version.source, path, body) };
    const value = await evaluateString(items, { inputs: values, steps: {} }, site).catch((error) => {
      if (error instanceof TesseraError && error.code === ErrorCode.EXPRESSION_LIMIT) throw error;
      return null;
    });
    if (Array.isArray(value) && value.length > limit) {
      problems.push({ path: `steps.${step.id}.with.items`, message: `map over ${value.length} items; the limit is ${limit}` });
    }
  }
  if (problems.length) throw badInput("the run input is refused", problems);
  return values;
}

export async function findProjectRun(app: AppContext, projectId: string, runId: string) {
  const run = await app.db.run.findFirst({ where: { id: runId, projectId } });
  if (!run) throw new TesseraError(ErrorCode.NOT_FOUND, `no run ${runId} in this project`);
  return run;
}

/**
 * Cancels a run and its child runs: queued steps are removed from the queue,
 * running steps are told over the event bus and their results discarded.
 */
export async function cancelRun(app: AppContext, projectId: string, runId: string): Promise<Run> {
  await findProjectRun(app, projectId, runId);
  const { run, steps } = await app.db.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT id FROM "Run" WHERE id = ${runId} FOR UPDATE`;
    const current = await tx.run.findUniqueOrThrow({ where: { id: runId }, include: { steps: true } });
    if (TERMINAL_RUN_STATUSES.has(current.status)) return { run: current, steps: [] };
    const open = current.steps.filter((step) => !TERMINAL_STEP_STATUSES.has(step.status));
    await tx.stepRun.updateMany({ where: { id: { in: open.map((step) => step.id) } }, data: { status: "CANCELLED", finishedAt: new Date() } });
    const run = await tx.run.update({
      where: { id: runId },
      data: { status: "CANCELLED", finishedAt: new Date(), error: { code: ErrorCode.CANCELLED, message: "the run was cancelled" } },
    });
    return { run, steps: open };
  });
  if (!steps.length) return run;
  publishRunEvent(app, { runId, type: RunEventType.RUN_STATUS, status: "CANCELLED" });
  await removeStepJobs(app, steps);
  const children = await app.db.run.findMany({ where: { parentStepRunId: { in: steps.map((step) => step.id) } } });
  for (const child of children) await cancelRun(app, projectId, child.id);
  // A cancelled child run fails its parent's step.
  if (run.parentStepRunId) await advanceRun(app, runId);
  return run;
}

/** Ends a `wait` step with the given input (checked against its `fields`), and lets the run go on. */
export async function resumeRun(app: AppContext, projectId: string, runId: string, stepId: string, input: unknown): Promise<Run> {
  const run = await findProjectRun(app, projectId, runId);
  const candidates = await app.db.stepRun.findMany({ where: { runId, OR: [{ key: stepId }, { stepId }] } });
  if (!candidates.length) throw new TesseraError(ErrorCode.NOT_FOUND, `run ${runId} has no step "${stepId}"`);
  const waiting = candidates.filter((step) => step.status === "WAITING");
  if (waiting.length !== 1) {
    throw new TesseraError(
      ErrorCode.CONFLICT,
      waiting.length ? `several "${stepId}" steps are waiting; name one by key: ${waiting.map((step) => step.key).join(", ")}` : `step "${stepId}" is not waiting (it is ${candidates[0]!.status})`,
    );
  }
  const step = waiting[0]!;
  const fields = (step.input as { fields?: Record<string, InputSpec> } | null)?.fields;
  const parsed = fields ? runInputSchema(fields).safeParse(input ?? {}) : { success: true as const, data: input ?? {} };
  if (!parsed.success) {
    throw badInput(
      `the input does not fit step "${stepId}"`,
      parsed.error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message })),
    );
  }
  if (!parsed.data || typeof parsed.data !== "object" || Array.isArray(parsed.data)) {
    throw badInput(`the input of step "${stepId}"`, [{ path: "", message: "must be an object" }]);
  }
  const { count } = await app.db.stepRun.updateMany({
    where: { id: step.id, status: "WAITING" },
    data: { status: "SUCCEEDED", output: parsed.data as Prisma.InputJsonValue, finishedAt: new Date() },
  });
  if (!count) throw new TesseraError(ErrorCode.CONFLICT, `step "${stepId}" was resumed or cancelled meanwhile`);
  publishRunEvent(app, { runId, type: RunEventType.STEP_FINISHED, stepId: step.stepId, stepKey: step.key, status: "SUCCEEDED", output: parsed.data });
  // The run goes on: unless another step still waits, it is RUNNING from now, as the planner would make it, so the
  // caller is answered with the state after the resume rather than the WAITING it read first.
  const going = await app.db.$executeRaw`
    UPDATE "Run" SET status = 'RUNNING' WHERE id = ${runId} AND status = 'WAITING'
      AND NOT EXISTS (SELECT 1 FROM "StepRun" WHERE "runId" = ${runId} AND status = 'WAITING')`;
  if (going) publishRunEvent(app, { runId, type: RunEventType.RUN_STATUS, status: "RUNNING" });
  await enqueueAdvance(app, runId, projectId, `resume_${step.id}`);
  return (await app.db.run.findFirst({ where: { id: run.id, projectId } })) ?? run;
}
