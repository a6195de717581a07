import type { Database, StepRun, Workflow, WorkflowVersion } from "../services/core/database.ts";

/**
 * The batched reads behind the Workflow, WorkflowVersion and Run fields: one
 * statement for every parent of a request instead of one per parent. Each takes
 * the caller's project and filters on it, so a key of another project's row
 * loads nothing; the dataloaders in workflows.ts map the rows back to keys.
 */

export function loadWorkflows(db: Database, projectId: string, ids: readonly string[]): Promise<Workflow[]> {
  return db.workflow.findMany({ where: { id: { in: [...ids] }, projectId } });
}

export function loadVersions(db: Database, projectId: string, ids: readonly string[]): Promise<WorkflowVersion[]> {
  return db.workflowVersion.findMany({ where: { id: { in: [...ids] }, workflow: { projectId } } });
}

/** Every version of each workflow, oldest first. */
export function loadVersionsOfWorkflows(db: Database, projectId: string, workflowIds: readonly string[]): Promise<WorkflowVersion[]> {
  return db.workflowVersion.findMany({
    where: { workflowId: { in: [...workflowIds] }, workflow: { projectId } },
    orderBy: [{ workflowId: "asc" }, { number: "asc" }],
  });
}

/** The highest-numbered version of each workflow: two statements, whatever the number of workflows or versions. */
export async function loadLatestVersions(db: Database, projectId: string, workflowIds: readonly string[]): Promise<WorkflowVersion[]> {
  const latest = await db.workflowVersion.groupBy({
    by: ["workflowId"],
    where: { workflowId: { in: [...workflowIds] }, workflow: { projectId } },
    _max: { number: true },
  });
  if (latest.length === 0) return [];
  return db.workflowVersion.findMany({
    where: { OR: latest.map((row) => ({ workflowId: row.workflowId, number: row._max.number! })), workflow: { projectId } },
  });
}

/** Every step of each run, in the order they were created. */
export function loadStepsOfRuns(db: Database, projectId: string, runIds: readonly string[]): Promise<StepRun[]> {
  return db.stepRun.findMany({
    where: { runId: { in: [...runIds] }, run: { projectId } },
    orderBy: [{ createdAt: "asc" }, { key: "asc" }],
  });
}
