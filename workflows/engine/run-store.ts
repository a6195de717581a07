import { Prisma, SQL_UTC_NOW, UTC_NOW, sql, type Database, type Run, type StepRun } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { itemIndex, type RunPlan, type StepState } from "./run-planner.ts";

type Tx = Prisma.TransactionClient;

/**
 * The run with what the planner reads of every step row, read without locks: what the first, evaluating plan of
 * an advance starts from. One statement on node-postgres (`sql`: Prisma's include would be two, each through its
 * query compiler, and even a raw statement through Prisma costs the event loop about a millisecond).
 */
export async function readRun(db: Database, runId: string): Promise<(Run & { steps: StepState[] }) | null> {
  const [run] = await sql<Run & { steps: StepState[] }>(
    db,
    `SELECT r.*, COALESCE((
      SELECT json_agg(json_build_object('id', s.id, 'stepId', s."stepId", 'key', s.key, 'parentId', s."parentId",
        'status', s.status, 'input', s.input, 'output', s.output, 'error', s.error))
      FROM "StepRun" s WHERE s."runId" = r.id), '[]'::json) AS steps
    FROM "Run" r WHERE r.id = $1::text`,
    [runId],
  );
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
  const changes = changeRecords(plan);
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

/** The plan's row changes as the JSON records both writers of a plan read (`writePlan`, `tessera_advance_planned`). */
function changeRecords(plan: Pick<RunPlan<StepState>, "changes">) {
  return [...plan.changes].map(([id, change]) => ({
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
}

/** What `advancePlanned` reports: whether the run exists, the finished step's end applied, the plan written. */
export type PlannedAdvance = { found: false } | { found: true; finishedNow: boolean; applied: false } | { found: true; finishedNow: boolean; applied: true; projectId: string; parentStepRunId: string | null };

/**
 * An advance in one statement (`tessera_advance_planned`, migration 20261205113000): the plan made from a snapshot
 * without locks is written under the run's lock only if the run's status and every top-level row's status are
 * still what the plan read (`expected`), compared afresh once the lock is held; else only `finished` (a step's
 * SUCCEEDED) is stored and the caller plans again. The planner reads nothing else that can change: a row's input
 * and output change only with its status. Not for runs with a map still collecting items (its items are not compared).
 */
export async function advancePlanned(
  db: Database,
  runId: string,
  expected: { run: Run["status"]; rows: StepState[] },
  plan: RunPlan<StepState>,
  finished?: FinishedStep,
): Promise<PlannedAdvance> {
  const steps: Record<string, string> = {};
  for (const row of expected.rows) if (row.parentId === null) steps[row.id] = row.status;
  const [result] = await sql<{ advanced: PlannedAdvance }>(db, "SELECT tessera_advance_planned($1::text, $2::jsonb, $3::jsonb, $4::jsonb, $5::jsonb) AS advanced", [
    runId,
    finished ? JSON.stringify({ stepRunId: finished.stepRunId, output: finished.output ?? null }) : null,
    JSON.stringify({ run: expected.run, steps }),
    JSON.stringify(changeRecords(plan)),
    runSetOf(plan),
  ]);
  return result!.advanced;
}

/** The run's new state as `tessera_advance_planned` writes it (the same as `runUpdate`), or null when it stays. */
function runSetOf(plan: Pick<RunPlan<StepState>, "started" | "transition">): string | null {
  const { started, transition } = plan;
  if (!started && !transition) return null;
  const ended = transition?.status === "SUCCEEDED" || transition?.status === "FAILED";
  return JSON.stringify({
    status: transition?.status ?? "RUNNING",
    started,
    ended,
    ...(transition?.status === "SUCCEEDED" ? { output: transition.output ?? null } : {}),
    ...(transition?.status === "FAILED" ? { error: transition.error } : {}),
  });
}

/** A map's item as `finishMapItems` hands back the ones it queued. */
export type QueuedItem = Pick<StepRun, "id" | "stepId" | "key" | "parentId" | "input">;

/**
 * Several items of one map succeeded, in one statement (`tessera_finish_map_items`: one lock of the map row and one
 * commit for all of them): each item's SUCCEEDED while it is still RUNNING (`finished`: the ids whose end applied),
 * the next PENDING items marked QUEUED within the map's concurrency. `done`: every item has finished or one failed
 * (or the map stopped running): the run needs an advance.
 */
export async function finishMapItems(
  db: Database,
  batch: { runId: string; mapId: string; items: FinishedStep[] },
): Promise<{ finished: string[]; done: boolean; queued: QueuedItem[] }> {
  const items = JSON.stringify(batch.items.map((item) => ({ id: item.stepRunId, output: item.output ?? null })));
  const [result] = await sql<{ fed: { finished: string[]; done: boolean; queued: QueuedItem[] } }>(
    db,
    "SELECT tessera_finish_map_items($1::text, $2::text, $3::jsonb) AS fed",
    [batch.runId, batch.mapId, items],
  );
  return result!.fed;
}

/**
 * A map's items, made in one statement while the map row is RUNNING and has none yet (a re-delivered job makes
 * none): the first `queueNow` QUEUED, the rest PENDING. Returns the rows made QUEUED (none when none were made).
 */
export async function insertMapItems(
  db: Database,
  map: Pick<StepRun, "id" | "runId" | "stepId" | "key">,
  inputs: unknown[],
  queueNow: number,
): Promise<{ made: number; queued: QueuedItem[] }> {
  const rows = await sql<QueuedItem & { status: string }>(
    db,
    `INSERT INTO "StepRun" (id, "runId", "stepId", key, "parentId", status, input, "createdAt")
    SELECT gen_random_uuid()::text, $1::text, $2::text, $3::text || '[' || (i.ordinality - 1) || ']', m.id,
      (CASE WHEN i.ordinality <= $4::int THEN 'QUEUED' ELSE 'PENDING' END)::"StepStatus", i.value, ${UTC_NOW}
    FROM (SELECT s.id FROM "StepRun" s WHERE s.id = $5::text AND s.status = 'RUNNING'
          AND NOT EXISTS (SELECT 1 FROM "StepRun" c WHERE c."parentId" = s.id)) AS m,
      jsonb_array_elements($6::jsonb) WITH ORDINALITY AS i(value, ordinality)
    ON CONFLICT ("runId", key) DO NOTHING
    RETURNING id, "stepId", key, "parentId", input, status::text AS status`,
    [map.runId, map.stepId, map.key, queueNow, map.id, JSON.stringify(inputs)],
  );
  return { made: rows.length, queued: rows.filter((row) => row.status === "QUEUED").sort((a, b) => itemIndex(a) - itemIndex(b)) };
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
