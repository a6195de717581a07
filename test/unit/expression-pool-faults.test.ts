import { readdirSync, readFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeExpressionPool, evaluateString } from "../../workflows/dsl/expression.ts";

/**
 * The expression pool's bound is on the expression's own work: a process that is starved of CPU (a loaded
 * machine), or killed from outside (a terminal's Ctrl-C reaches the whole process group), is not an expression
 * past its limit. Before: the chaos round's `sigint` scenario answered a `runWorkflow` with EXPRESSION_LIMIT for
 * `[1, 2, 3, 4]`.
 */
const scope = { inputs: { n: 1 }, steps: {} };
// About a few hundred ms of CPU in the evaluating process.
const BUSY = "${{ $count([1..400000].($ * 2)) }}";

const saved = { ...process.env };
afterEach(() => {
  for (const name of Object.keys(process.env)) if (name.startsWith("WORKFLOW_EXPRESSION_") && !(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});
afterAll(() => closeExpressionPool());

/** The pool's processes: this process's children running expression-process.mjs. */
function evaluators(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("expression-process")) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.runIf(process.platform === "linux")("expression pool under faults that are not the expression's", () => {
  beforeAll(async () => {
    await closeExpressionPool();
    expect(await evaluateString("${{ 1 + 1 }}", scope)).toBe(2);
  });

  it("does not count time the evaluating process spends stopped (starved of CPU) against the deadline", async () => {
    // 2 s of CPU is several times what BUSY needs, even beside a loaded suite (1 s was not, at load 8); the process
    // is stopped for longer than the deadline, so a deadline in wall time would end it.
    process.env.WORKFLOW_EXPRESSION_TIMEOUT_MS = "2000";
    const evaluation = evaluateString(BUSY, scope);
    evaluation.catch(() => {}); // awaited below
    await sleep(150);
    const pids = evaluators();
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, "SIGSTOP");
    await sleep(4500);
    for (const pid of pids) process.kill(pid, "SIGCONT");
    expect(await evaluation).toBe(400000);
  });

  it("a SIGINT or SIGTERM from outside (Ctrl-C to the process group, a deploy) does not end an evaluation", async () => {
    process.env.WORKFLOW_EXPRESSION_TIMEOUT_MS = "20000";
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      const evaluation = evaluateString(BUSY, scope);
      evaluation.catch(() => {}); // awaited below
    evaluation.catch(() => {}); // awaited below
      await sleep(100);
      for (const pid of evaluators()) process.kill(pid, signal);
      expect(await evaluation).toBe(400000);
      expect(await evaluateString("${{ [1, 2, 3, 4] }}", scope)).toEqual([1, 2, 3, 4]);
    }
  });

  it("an evaluating process killed by something else is replaced and the evaluation sent again", async () => {
    process.env.WORKFLOW_EXPRESSION_TIMEOUT_MS = "20000";
    const evaluation = evaluateString(BUSY, scope);
    evaluation.catch(() => {}); // awaited below
    await sleep(100);
    for (const pid of evaluators()) process.kill(pid, "SIGKILL");
    expect(await evaluation).toBe(400000);
  });
});
