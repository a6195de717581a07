import { Prisma, SQL_UTC_NOW, type Run, type StepRun } from "../../services/core/database.ts";
import type { RunPlan, StepState } from "./run-planner.ts";

type Tx = Prisma.TransactionClient;

/**
 * The run with what the planner reads of every step row, read without locks: what the first, evaluating plan of
 * an advance starts from. One statement (Prisma's include would be two, each through its query compiler).
 */
export async function readRun(db: Pick<Tx, "$queryRaw">, runId: string): Promise<(Run & { steps: StepState[] }) | null> {
  const [run] = await db.$queryRaw<(Run & { steps: StepState[] })[]>`
    SELECT r.*, COALESCE((
      SELECT json_agg(json_build_object('id', s.id, 'stepId', s."stepId", 'key', s.key, 'parentId', s."parentId",
        'status', s.status, 'input', s.input, 'output', s.output, 'error', s.error))
      FROM "StepRun" s WHERE s."runId" = r.id), '[]'::json) AS steps
    FROM "Run" r WHERE r.id = ${runId}`;
  return run ?? null;
}

/**
 * Locks the run row until the transaction ends and reads it with its step
 * rows: whoever advances a run holds this lock, so advances take turns.
 */
export async function lockRun(tx: Tx, runId: string): Promise<(Run & { steps: StepRun[] }) | null> {
  // Locks and reads the run in one statement (Prisma's findUnique would be a second); its steps in another.
  const [run] = await tx.$queryRaw<Run[]>`SELECT * FROM "Run" WHERE id = ${runId} FOR UPDATE`;
  if (!run) return null;
  return { ...run, steps: await tx.stepRun.findMany({ where: { runId } }) };
}

/**
 * Locks the rows of the given maps too and reads their items afresh:
 * finished items feed their map under the map row's lock (`feedMap`), not
 * the run's. Returns `rows` with those items replaced, in the same order.
 */
export async function lockMaps(tx: Tx, rows: StepRun[], maps: StepRun[]): Promise<StepRun[]> {
  const byKey = new Map(rows.map((row) => [row.key, row]));
  for (const map of maps) {
    await tx.$queryRaw`SELECT id FROM "StepRun" WHERE id = ${map.id} FOR UPDATE`;
    for (const item of await tx.stepRun.findMany({ where: { parentId: map.id } })) byKey.set(item.key, item);
  }
  return [...byKey.values()];
}

/**
 * Writes what the planner decided in one statement: every changed row from one JSON array, and the run's
 * new state in the same statement when it changes (a chain of `transform` steps finished in one plan is
 * one write, however long).
 */
export async function writePlan(tx: Tx, runId: string, plan: RunPlan<StepRun>): Promise<void> {
  const changes = [...plan.changes].map(([id, change]) => ({
    id,
    status: change.status,
    setInput: "input" in change,
    input: change.input ?? null,
    setOutput: "output" in change,
    output: change.output ?? null,
    setError: "error" in change,
    error: change.error ?? null,
    started: Boolean(change.started),
    finished: Boolean(change.finished),
  }));
  const stepWrite = changes.length
    ? Prisma.sql`
      UPDATE "StepRun" AS s SET
        status = c.status::"StepStatus",
        input = CASE WHEN c."setInput" THEN c.input ELSE s.input END,
        output = CASE WHEN c."setOutput" THEN c.output ELSE s.output END,
        error = CASE WHEN c."setError" THEN c.error ELSE s.error END,
        attempts = CASE WHEN c.started THEN s.attempts + 1 ELSE s.attempts END,
        "startedAt" = CASE WHEN c.started THEN COALESCE(s."startedAt", ${SQL_UTC_NOW}) ELSE s."startedAt" END,
        "finishedAt" = CASE WHEN c.finished THEN ${SQL_UTC_NOW} ELSE s."finishedAt" END
      FROM jsonb_to_recordset(${JSON.stringify(changes)}::jsonb) AS c(
        id text, status text, "setInput" boolean, input jsonb, "setOutput" boolean, output jsonb,
        "setError" boolean, error jsonb, started boolean, finished boolean)
      WHERE s.id = c.id AND s."runId" = ${runId}`
    : undefined;
  const runWrite = runUpdate(runId, plan);
  if (stepWrite && runWrite) await tx.$executeRaw`WITH steps AS (${stepWrite} RETURNING 1) ${runWrite}`;
  else if (stepWrite || runWrite) await tx.$executeRaw`${(stepWrite ?? runWrite)!}`;
}

/** The run's new state as an UPDATE, or nothing when it stays as it is. */
function runUpdate(runId: string, plan: RunPlan<StepRun>): Prisma.Sql | undefined {
  const { started, transition } = plan;
  if (!started && !transition) return undefined;
  const sets = [Prisma.sql`status = ${transition?.status ?? "RUNNING"}::"RunStatus"`];
  if (started) sets.push(Prisma.sql`"startedAt" = ${SQL_UTC_NOW}`);
  if (transition?.status === "SUCCEEDED" || transition?.status === "FAILED") {
    sets.push(Prisma.sql`"finishedAt" = ${SQL_UTC_NOW}`);
    sets.push(transition.status === "SUCCEEDED" ? Prisma.sql`output = ${JSON.stringify(transition.output ?? null)}::jsonb` : Prisma.sql`output = NULL`);
    sets.push(transition.error ? Prisma.sql`error = ${JSON.stringify(transition.error)}::jsonb` : Prisma.sql`error = NULL`);
  }
  return Prisma.sql`UPDATE "Run" SET ${Prisma.join(sets)} WHERE id = ${runId}`;
}
