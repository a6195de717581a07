import { setTimeout as sleep } from "node:timers/promises";
import type { AppContext } from "../../services/app/app-context.ts";
import { Prisma, type Run, type StepRun } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import type { Logger } from "../../services/core/logger.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import { findStepType } from "../steps/step-registry.ts";
import type { PublishedWorkflow, StepContext, ToolCallRow } from "../steps/step-type.ts";
import { publishRunEvent, RunEventType } from "./run-events.ts";
import { cancelRun, findVersion, startChildRun, startRun } from "./run-service.ts";

const RUN_POLL_MS = 250;

/** What one attempt of a step sees: its row, its run, and the engine's services tied to that row. */
export function createStepContext(
  app: AppContext,
  step: { run: Pick<Run, "id" | "projectId">; row: Pick<StepRun, "id" | "runId" | "stepId" | "key">; attempt: number; logger: Logger; signal: AbortSignal },
): StepContext {
  const { run, row, attempt } = step;
  return {
    app,
    logger: step.logger,
    projectId: run.projectId,
    runId: run.id,
    stepRunId: row.id,
    stepId: row.stepId,
    attempt,
    signal: step.signal,
    log: (message) => publishRunEvent(app, { runId: run.id, type: RunEventType.LOG, stepId: row.stepId, stepKey: row.key, message }),
    token: (token) => publishRunEvent(app, { runId: run.id, type: RunEventType.TOKEN, stepId: row.stepId, stepKey: row.key, token }),
    findStepType,
    startChildRun: ({ toolCallRowId, ...request }) => startChildRun(app, { projectId: run.projectId, parentStepRunId: toolCallRowId ?? row.id, ...request }),
    recordToolCall: (call) => recordToolCall(app, row, call.attempt ?? attempt, call),
    findWorkflow: (slug) => findWorkflow(app, run.projectId, slug),
    runWorkflow: (request, signal) => runWorkflowToEnd(app, run.projectId, request, signal),
  };
}

/**
 * A call becomes a child StepRun, created RUNNING and finished with the
 * call's output or error. Keys carry the attempt, so a retried agent step
 * starts its calls afresh beside the old ones.
 */
async function recordToolCall(
  app: AppContext,
  parent: Pick<StepRun, "id" | "runId" | "stepId" | "key">,
  attempt: number,
  call: { index: number; tool: string; input: unknown },
): Promise<ToolCallRow> {
  const input = { tool: call.tool, arguments: call.input } as Prisma.InputJsonValue;
  const key = `${parent.key}:attempt-${attempt}:call-${call.index}`;
  // A resumed agent that died after this call was recorded makes it again: the row starts over.
  const row = await app.db.stepRun.upsert({
    where: { runId_key: { runId: parent.runId, key } },
    create: { runId: parent.runId, stepId: parent.stepId, key, parentId: parent.id, status: "RUNNING", attempts: 1, input, startedAt: new Date() },
    update: { status: "RUNNING", input, output: Prisma.DbNull, error: Prisma.DbNull, startedAt: new Date(), finishedAt: null },
  });
  return {
    id: row.id,
    async finish(result) {
      // Only while RUNNING: a cancelled run's rows stay cancelled.
      await app.db.stepRun.updateMany({
        where: { id: row.id, status: "RUNNING" },
        data: result.error
          ? { status: "FAILED", error: result.error as Prisma.InputJsonValue, finishedAt: new Date() }
          : { status: "SUCCEEDED", output: (result.output ?? null) as Prisma.InputJsonValue, finishedAt: new Date() },
      });
    },
  };
}

async function findWorkflow(app: AppContext, projectId: string, slug: string): Promise<PublishedWorkflow> {
  const version = await findVersion(app, projectId, slug);
  const definition = version.definition as unknown as Partial<WorkflowDefinition>;
  return { version: version.number, name: definition.name, description: definition.description, inputs: definition.inputs ?? {} };
}

/** A run of its own, pinned to the version asked for, watched until it ends; cancelled when its caller stops. */
async function runWorkflowToEnd(app: AppContext, projectId: string, request: { slug: string; version: number; input: unknown }, signal: AbortSignal) {
  const { slug } = request;
  const run = await startRun(app, { projectId, slug, version: request.version, input: request.input });
  try {
    while (true) {
      const now = await app.db.run.findUniqueOrThrow({ where: { id: run.id } });
      if (now.status === "SUCCEEDED") return { runId: run.id, output: now.output };
      if (now.status === "FAILED" || now.status === "CANCELLED") {
        const error = (now.error as { code?: string; message?: string } | null) ?? {};
        throw new TesseraError(ErrorCode.MODEL_ERROR, `workflow ${slug} run ${run.id} ${now.status.toLowerCase()}: ${error.message ?? ""}`.trim(), { runId: run.id });
      }
      if (now.status === "WAITING") throw new TesseraError(ErrorCode.BAD_USER_INPUT, `workflow ${slug} waits for a person and cannot run as a tool`);
      await sleep(RUN_POLL_MS, undefined, { signal });
    }
  } catch (error) {
    // Out of time, cancelled, or waiting for a person: the run must not go on without its caller.
    await cancelRun(app, projectId, run.id).catch(() => {});
    throw error;
  }
}
