/** What the run page needs of a StepRun. */
export type StepRunRow = { id: string; stepId: string; status: string; startedAt: string | null; finishedAt: string | null };

export type ToolCall<T extends StepRunRow> = { row: T; attempt: number; index: number };
export type StepWithCalls<T extends StepRunRow> = { row: T; calls: Array<ToolCall<T>> };

const CALL_KEY = /^(.*):attempt-(\d+):call-(\d+)$/;

/**
 * An agent's tool calls are StepRuns of their own, keyed `<step key>:attempt-<n>:call-<i>`:
 * grouped under their step, in attempt then call order, for the run page's nested timeline.
 */
export function groupToolCalls<T extends StepRunRow>(rows: T[]): Array<StepWithCalls<T>> {
  const steps = new Map<string, StepWithCalls<T>>();
  const orphans: Array<[string, ToolCall<T>]> = [];
  for (const row of rows) {
    const match = CALL_KEY.exec(row.id);
    if (match) orphans.push([match[1]!, { row, attempt: Number(match[2]), index: Number(match[3]) }]);
    else steps.set(row.id, { row, calls: [] });
  }
  for (const [parent, call] of orphans) {
    const step = steps.get(parent);
    if (step) step.calls.push(call);
    else steps.set(call.row.id, { row: call.row, calls: [] });
  }
  for (const step of steps.values()) step.calls.sort((a, b) => a.attempt - b.attempt || a.index - b.index);
  return [...steps.values()];
}

/** Each graph node's status: a step's own row, the least finished of a map's items; tool calls do not count. */
export function nodeStatuses(rows: StepRunRow[]): Record<string, string> {
  const finished = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"]);
  const out: Record<string, string> = {};
  for (const row of rows) {
    if (CALL_KEY.test(row.id)) continue;
    if (!out[row.stepId] || !finished.has(row.status)) out[row.stepId] = row.status;
  }
  return out;
}
