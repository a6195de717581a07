import type { AppContext } from "../../services/app/app-context.ts";
import type { StepRun } from "../../services/core/database.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import type { StepTemplate } from "../steps/step-type.ts";

/**
 * BullMQ job ids derived from the run and the step's key: enqueueing a step
 * twice (after a crash, or from two coordinators) is one job. (BullMQ
 * refuses ":" in custom ids.)
 */
export function stepJobId(runId: string, key: string): string {
  return `${runId}_${key}`;
}

/** Retry options of a step: its own `retry`, else one attempt. */
export function retryOf(step: { retry?: { attempts: number; backoffMs: number } } | undefined) {
  return step?.retry ?? { attempts: 1, backoffMs: 1000 };
}

/** The step as written: a top-level step, or the template of the map a child row belongs to. */
export function stepOf(definition: WorkflowDefinition, row: Pick<StepRun, "stepId" | "parentId">, parent?: Pick<StepRun, "input"> | null): StepTemplate | undefined {
  const step = definition.steps.find((candidate) => candidate.id === row.stepId);
  if (!row.parentId) return step;
  return (parent?.input as { step?: StepTemplate } | null)?.step;
}

type StepRow = Pick<StepRun, "id" | "stepId" | "key" | "parentId" | "input">;

/** Enqueues one job per step row, all in one Redis round trip; a map's child takes its retry from the map's template (its parent among `rows`). */
export async function enqueueSteps(
  app: AppContext,
  run: { runId: string; projectId: string; definition: WorkflowDefinition; rows: StepRow[] },
  queued: StepRow[],
) {
  const byId = new Map(run.rows.map((row) => [row.id, row]));
  await app.queues.enqueueBulk(
    "workflow-step",
    queued.map((row) => {
      const retry = retryOf(stepOf(run.definition, row, row.parentId ? byId.get(row.parentId) : null));
      const jobId = stepJobId(run.runId, row.key);
      return {
        payload: { jobId, runId: run.runId, stepRunId: row.id, projectId: run.projectId },
        options: { jobId, attempts: retry.attempts, backoff: { type: "exponential", delay: retry.backoffMs } },
      };
    }),
  );
}

/** Removes jobs of steps that will not run; a job already running cannot be removed and stops on its own. */
export async function removeStepJobs(app: AppContext, rows: Pick<StepRun, "runId" | "key">[]) {
  const queue = app.queues.queue("workflow-step");
  await Promise.all(rows.map((row) => queue.remove(stepJobId(row.runId, row.key)).catch(() => 0)));
}

/** Asks a worker to advance a run: after start, resume or a child's end. */
export async function enqueueAdvance(app: AppContext, runId: string, projectId: string, reason: string) {
  const jobId = `${runId}_advance_${reason}`;
  await app.queues.enqueue("workflow-run", { jobId, runId, projectId }, { jobId, attempts: 5, backoff: { type: "exponential", delay: 500 } });
}
