import { Prisma, type Run, type StepRun } from "../../services/core/database.ts";
import type { RunPlan, StepChange } from "./run-planner.ts";

type Tx = Prisma.TransactionClient;

/** The run with every step row, read without locks: what the first, evaluating plan of an advance starts from. */
export async function readRun(db: Pick<Tx, "run">, runId: string): Promise<(Run & { steps: StepRun[] }) | null> {
  return db.run.findUnique({ where: { id: runId }, include: { steps: true } });
}

/**
 * Locks the run row until the transaction ends and reads it with its step
 * rows: whoever advances a run holds this lock, so advances take turns.
 */
export async function lockRun(tx: Tx, runId: string): Promise<(Run & { steps: StepRun[] }) | null> {
  await tx.$queryRaw`SELECT id FROM "Run" WHERE id = ${runId} FOR UPDATE`;
  return tx.run.findUnique({ where: { id: runId }, include: { steps: true } });
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

/** Writes what the planner decided: the rows' new states, then the run's. */
export async function writePlan(tx: Tx, runId: string, plan: RunPlan<StepRun>): Promise<void> {
  // Bare status changes (items fed, steps cancelled) go in one statement per kind; the rest row by row.
  const bare = new Map<string, { change: StepChange; ids: string[] }>();
  for (const [id, change] of plan.changes) {
    if ("input" in change || "output" in change || "error" in change) {
      await tx.stepRun.update({ where: { id }, data: stepData(change) });
      continue;
    }
    const kind = `${change.status}:${Boolean(change.finished)}`;
    const group = bare.get(kind) ?? { change, ids: [] };
    group.ids.push(id);
    bare.set(kind, group);
  }
  for (const { change, ids } of bare.values()) await tx.stepRun.updateMany({ where: { id: { in: ids } }, data: stepData(change) });

  const { started, transition } = plan;
  if (!started && !transition) return;
  const data: Prisma.RunUpdateInput = started ? { status: "RUNNING", startedAt: new Date() } : {};
  if (transition?.status === "SUCCEEDED" || transition?.status === "FAILED") {
    Object.assign(data, {
      status: transition.status,
      output: transition.status === "SUCCEEDED" ? (transition.output as Prisma.InputJsonValue) : Prisma.DbNull,
      error: transition.error ? (transition.error as Prisma.InputJsonValue) : Prisma.DbNull,
      finishedAt: new Date(),
    });
  } else if (transition) data.status = transition.status;
  await tx.run.update({ where: { id: runId }, data });
}

function stepData(change: StepChange) {
  return {
    status: change.status,
    ...("input" in change ? { input: change.input as Prisma.InputJsonValue } : {}),
    ...("output" in change ? { output: change.output as Prisma.InputJsonValue } : {}),
    ...("error" in change ? { error: change.error as Prisma.InputJsonValue } : {}),
    ...(change.finished ? { finishedAt: new Date() } : {}),
  };
}
