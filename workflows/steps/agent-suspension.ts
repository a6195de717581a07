import type { Prisma } from "../../services/core/database.ts";
import type { ErrorRecord } from "../../services/core/errors.ts";
import type { AgentState } from "../../services/generation/agent-loop.ts";
import type { UsageEntry, UsageMeter } from "../../services/generation/usage-meter.ts";
import type { StepContext } from "./step-type.ts";

/**
 * An agent waiting for a workflow it called holds no worker: its loop state is saved on the tool call's row (a
 * child row of the agent step), the workflow's run hangs from that row, and the agent step's job ends. The run's
 * end finishes the row and queues the agent step again (run-coordinator), which finds the state here and goes on.
 */
export type SavedAgent = {
  state: AgentState;
  /** The attempt whose call rows the loop goes on numbering. */
  attempt: number;
  /** When the agent's `timeoutMs` runs out, across suspensions (epoch ms). */
  deadlineAt: number;
  /** The workflow the call runs, to start it again if the process died before it was started. */
  workflow: { slug: string; version: number };
};

type CallInput = { tool: string; arguments: unknown; agent?: SavedAgent };

export type Suspension = {
  rowId: string;
  saved: SavedAgent;
  arguments: unknown;
  /** Still waiting for the run, or the call's result to go on with. */
  result?: { output?: unknown; error?: ErrorRecord };
};

/** The latest suspension of this agent step, if any. */
export async function latestSuspension(context: Pick<StepContext, "app" | "stepRunId">): Promise<Suspension | null> {
  const rows = await context.app.db.stepRun.findMany({ where: { parentId: context.stepRunId }, orderBy: { createdAt: "desc" } });
  for (const row of rows) {
    const input = row.input as CallInput | null;
    if (!input?.agent) continue;
    const suspension: Suspension = { rowId: row.id, saved: input.agent, arguments: input.arguments };
    if (row.status === "SUCCEEDED") suspension.result = { output: row.output };
    else if (row.status !== "RUNNING") {
      const error = (row.error as ErrorRecord | null) ?? { code: "CANCELLED", message: "the workflow run was cancelled" };
      suspension.result = { error: { code: error.code, message: error.message } };
    }
    return suspension;
  }
  return null;
}

/** Saves the state on the call's row, before the workflow starts. */
export async function saveSuspension(context: Pick<StepContext, "app">, rowId: string, saved: SavedAgent) {
  const row = await context.app.db.stepRun.findUniqueOrThrow({ where: { id: rowId }, select: { input: true } });
  const input = { ...(row.input as CallInput), agent: saved };
  await context.app.db.stepRun.update({ where: { id: rowId }, data: { input: input as unknown as Prisma.InputJsonValue } });
}

/** A resumed agent's meter starts with the calls already recorded on its row; returns the tokens already charged. */
export async function restoreUsage(context: Pick<StepContext, "app" | "stepRunId">, usage: UsageMeter): Promise<number> {
  const row = await context.app.db.stepRun.findUnique({ where: { id: context.stepRunId }, select: { usage: true } });
  for (const call of (row?.usage as { calls?: UsageEntry[] } | null)?.calls ?? []) usage.add(call);
  return usage.total.totalTokens;
}
