import { describe, expect, it } from "vitest";
import { groupToolCalls, nodeStatuses } from "../../studio/src/run-steps.ts";

/* The run page's grouping of an agent's tool calls (StepRuns keyed `<step key>:attempt-<n>:call-<i>`) under their step. */
const row = (id: string, stepId: string, status = "SUCCEEDED") => ({ id, stepId, status, startedAt: null, finishedAt: null });

describe("run page: tool calls under their step", () => {
  it("nests each call under its step, ordered by attempt then index, and keeps other steps as they are", () => {
    const rows = [
      row("plan", "plan"),
      row("ask:attempt-2:call-0", "ask"),
      row("ask", "ask", "RUNNING"),
      row("ask:attempt-1:call-1", "ask", "FAILED"),
      row("ask:attempt-1:call-0", "ask"),
      row("each[0]", "each"),
    ];
    const grouped = groupToolCalls(rows);
    expect(grouped.map((g) => g.row.id)).toEqual(["plan", "ask", "each[0]"]);
    expect(grouped[1]!.calls.map((c) => [c.attempt, c.index, c.row.id])).toEqual([
      [1, 0, "ask:attempt-1:call-0"],
      [1, 1, "ask:attempt-1:call-1"],
      [2, 0, "ask:attempt-2:call-0"],
    ]);
  });

  it("a call whose step row is missing is still shown, as a row of its own", () => {
    expect(groupToolCalls([row("x:attempt-1:call-0", "x")]).map((g) => g.row.id)).toEqual(["x:attempt-1:call-0"]);
  });

  it("node colours come from the steps, not their tool calls; a map shows its least finished item", () => {
    const statuses = nodeStatuses([
      row("ask", "ask", "SUCCEEDED"),
      row("ask:attempt-1:call-0", "ask", "FAILED"),
      row("each[0]", "each", "SUCCEEDED"),
      row("each[1]", "each", "RUNNING"),
    ]);
    expect(statuses).toEqual({ ask: "SUCCEEDED", each: "RUNNING" });
  });
});
