import { Prisma, SQL_UTC_NOW, type Run, type StepRun } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
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

/** A step's SUCCEEDED, written by the statement that locks its run (see `lockRun`). */
export type FinishedStep = { stepRunId: string; output: unknown };

/**
 * Locks the run row until the transaction ends and reads it with its step
 * rows: whoever advances a run holds this lock, so advances take turns.
 * With `finished`, the same statement stores that step's SUCCEEDED (while it
 * is still RUNNING) once the run is locked: the step's end and the advance it
 * causes commit together. `finishedNow` says whether that write applied.
 */
export async function lockRun(tx: Tx, runId: string, finished?: FinishedStep): Promise<(Run & { steps: StepRun[]; finishedNow: boolean }) | null> {
  // The run, locked (FOR UPDATE returns its latest version), and the step's end in one statement; the rows in a
  // second one, read after the lock is held (one statement reads with one snapshot, taken before the lock wait).
  const [run] = finished
    ? await tx.$queryRaw<(Run & { finishedNow: boolean })[]>`
      WITH locked AS (SELECT * FROM "Run" WHERE id = ${runId} FOR UPDATE),
      done AS (
        UPDATE "StepRun" SET status = 'SUCCEEDED', output = ${JSON.stringify(finished.output ?? null)}::jsonb, "finishedAt" = ${SQL_UTC_NOW}
        WHERE id = ${finished.stepRunId} AND "runId" = ${runId} AND status = 'RUNNING' AND EXISTS (SELECT 1 FROM locked)
        RETURNING id)
      SELECT locked.*, EXISTS (SELECT 1 FROM done) AS "finishedNow" FROM locked`
    : await tx.$queryRaw<(Run & { finishedNow: boolean })[]>`SELECT *, false AS "finishedNow" FROM "Run" WHERE id = ${runId} FOR UPDATE`;
  if (!run) return null;
  const steps = await tx.$queryRaw<StepRun[]>`SELECT * FROM "StepRun" WHERE "runId" = ${runId}`;
  return { ...run, steps };
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

/** A run as its start stores it: its rows, and the run's state after a first plan when one was made. */
export type NewRun = {
  id: string;
  projectId: string;
  workflowVersionId: string;
  input: unknown;
  parentStepRunId?: string;
  plan?: RunPlan<StepState>;
  rows: StepState[];
};

/**
 * Stores a new run and its step rows in one statement (`tessera_start_run`, migration 20261205082000): within
 * `maxOpen` open top-level runs of the project, checked under the project's advisory lock, or not at all. One
 * statement commits whole or leaves nothing, however the connection or the server fails around it.
 * Returns the run, or the number of open runs when the quota refused it.
 */
export async function insertRun(db: Pick<Tx, "$queryRaw">, run: NewRun, maxOpen: number | null): Promise<Run | { refusedOpen: number }> {
  const { plan } = run;
  const transition = plan?.transition;
  const ended = transition?.status === "SUCCEEDED" || transition?.status === "FAILED";
  const status = transition?.status ?? (plan?.started ? "RUNNING" : "QUEUED");
  const runJson = {
    id: run.id,
    projectId: run.projectId,
    workflowVersionId: run.workflowVersionId,
    status,
    input: run.input,
    output: ended ? (transition.output ?? null) : null,
    error: ended ? (transition.error ?? null) : null,
    parentStepRunId: run.parentStepRunId ?? null,
    started: Boolean(plan?.started),
    finished: ended,
  };
  const steps = run.rows.map((row) => {
    const change = plan?.changes.get(row.id);
    return { id: row.id, stepId: row.stepId, key: row.key, status: row.status, input: row.input, output: row.output, error: row.error, started: Boolean(change?.started), finished: Boolean(change?.finished) };
  });
  let result: { started: Record<string, unknown> } | undefined;
  try {
    [result] = await db.$queryRaw<{ started: Record<string, unknown> }[]>`
      SELECT tessera_start_run(${JSON.stringify(runJson)}::jsonb, ${JSON.stringify(steps)}::jsonb, ${maxOpen}::int) AS started`;
  } catch (error) {
    if (lockTimedOut(error)) throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "too many runs of this project are starting at once; nothing was started, retry later");
    throw error;
  }
  const started = result!.started;
  if (typeof started.refusedOpen === "number") return { refusedOpen: started.refusedOpen };
  const at = (value: unknown) => (typeof value === "string" ? new Date(`${value}Z`) : null);
  return { ...(started as unknown as Run), createdAt: at(started.createdAt)!, startedAt: at(started.startedAt), finishedAt: at(started.finishedAt) };
}

/** PostgreSQL's lock_not_available (55P03): the start waited its lock_timeout for the project's lock. */
function lockTimedOut(error: unknown): boolean {
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { code?: string } } } } | null)?.meta?.driverAdapterError?.cause;
  return cause?.code === "55P03" || /lock timeout/i.test(String((error as Error | null)?.message ?? ""));
}
