import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import * as expressions from "../../workflows/dsl/expression.ts";
import { evaluateForEach, evaluateString, evaluateValue } from "../../workflows/dsl/expression.ts";

const RECURSION = "${{ ($f := function($x){ $f($x+1) }; $f(inputs.n)) }}";
const RANGE_BOMB = "${{ $count([1..10000000].($*2)) }}";
// How late a limit may end past its deadline: killing the process and hearing it exit, on a loaded machine.
const SLACK_MS = 1500;
// The deadline counts the evaluating process's CPU time: on a loaded machine, where it gets part of a CPU, its wall
// time is longer by as much (at load 35 on 2 cores, a 500 ms deadline ended 12 s later). The wall-clock bound is
// 20 times the deadline, at least 30 s (expression-pool.ts): what a limit may take in wall time.
const wallBound = (deadlineMs: number) => Math.max(30_000, 20 * deadlineMs) + SLACK_MS;
// The longest tick gap allowed meanwhile: the bomb's process competes for the CPU, but never holds this event loop (before: 14 s).
const STALL_MS = 300;
const scope = {
  inputs: { n: 1, list: [{ id: 1 }, { id: 2 }], nested: [[1, 2], [3]], one: [5], empty: [], text: "x", nothing: null, object: { a: { b: 2 } } },
  steps: { a: { output: { text: "hello", items: [{ id: 7 }] }, status: "SUCCEEDED" }, b: { output: null, status: "PENDING" } },
};

const saved = { ...process.env };
function setLimits(env: Record<string, string>) {
  Object.assign(process.env, env);
}
afterEach(async () => {
  for (const name of Object.keys(process.env)) if (name.startsWith("WORKFLOW_EXPRESSION_") && !(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});
afterAll(() => expressions.closeExpressionPool?.());

/** The longest the main thread's event loop went without a tick while `work` ran. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ outcome: PromiseSettledResult<T>; stallMs: number; elapsedMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 10);
  const started = performance.now();
  const [outcome] = await Promise.allSettled([work()]);
  const elapsedMs = performance.now() - started;
  clearInterval(ticker);
  stallMs = Math.max(stallMs, performance.now() - last);
  return { outcome: outcome!, stallMs, elapsedMs };
}

function limitOf(outcome: PromiseSettledResult<unknown>) {
  expect(outcome.status).toBe("rejected");
  const error = (outcome as PromiseRejectedResult).reason;
  expect(error).toBeInstanceOf(TesseraError);
  expect(error.code).toBe(ErrorCode.EXPRESSION_LIMIT);
  return error as TesseraError;
}

describe("workflow expression limits", () => {
  beforeAll(async () => {
    // A warm process, so start-up time does not count against the first deadline below.
    await evaluateString("${{ 1 + 1 }}", scope);
  });

  it("stops a recursive function that never ends at its deadline, without stalling the event loop", async () => {
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "300" });
    const { outcome, stallMs, elapsedMs } = await longestStall(() => evaluateString(RECURSION, scope, { path: ["steps", 0, "if"] }));
    const error = limitOf(outcome);
    expect(error.details).toMatchObject({ limit: "time", variable: "WORKFLOW_EXPRESSION_TIMEOUT_MS", value: 300, path: "steps[0].if" });
    expect(error.message).toContain("WORKFLOW_EXPRESSION_TIMEOUT_MS");
    expect(elapsedMs).toBeLessThan(wallBound(300));
    expect(stallMs).toBeLessThan(STALL_MS);
  });

  it("stops a range bomb at its deadline or its heap, without stalling the event loop", async () => {
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "500" });
    const { outcome, stallMs, elapsedMs } = await longestStall(() => evaluateString(RANGE_BOMB, scope));
    expect(["time", "memory"]).toContain(limitOf(outcome).details?.limit);
    expect(elapsedMs).toBeLessThan(wallBound(500));
    expect(stallMs).toBeLessThan(STALL_MS);
  });

  // With a worker thread's resourceLimits this very expression aborted the whole test process (nodejs/node#47224).
  it("stops an expression that allocates past its process's heap, and this process lives on", async () => {
    await expressions.closeExpressionPool();
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "20000", WORKFLOW_EXPRESSION_MAX_HEAP_MB: "32" });
    const { outcome, elapsedMs } = await longestStall(() => evaluateString("${{ $count([1..10000000].{ 'a': $, 'b': [$, $] }) }}", scope));
    expect(limitOf(outcome).details).toMatchObject({ limit: "memory", variable: "WORKFLOW_EXPRESSION_MAX_HEAP_MB", value: 32 });
    expect(elapsedMs).toBeLessThan(15_000);
    await expressions.closeExpressionPool(); // the next tests get the default heap again
  });

  it("refuses a result larger than the cap", async () => {
    setLimits({ WORKFLOW_EXPRESSION_MAX_RESULT_BYTES: "1000" });
    const error = limitOf((await Promise.allSettled([evaluateString("${{ $join([1..1000].$string(), ',') }}", scope)]))[0]!);
    expect(error.details).toMatchObject({ limit: "size", variable: "WORKFLOW_EXPRESSION_MAX_RESULT_BYTES", value: 1000 });
    // A plain path is read on the main thread, and capped the same way.
    setLimits({ WORKFLOW_EXPRESSION_MAX_RESULT_BYTES: "10" });
    const plain = limitOf((await Promise.allSettled([evaluateString("${{ steps.a.output }}", scope)]))[0]!);
    expect(plain.details).toMatchObject({ limit: "size" });
  });

  it("stops deep recursion that is not a tail call (JSONata's evaluation is async: it grows the heap, not the stack)", async () => {
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "500" });
    const deep = "${{ ($f := function($x){ $x > 0 ? 1 + $f($x - 1) : 0 }; $f(10000000)) }}";
    const { outcome, elapsedMs } = await longestStall(() => evaluateString(deep, scope));
    expect(["time", "memory"]).toContain(limitOf(outcome).details?.limit);
    expect(elapsedMs).toBeLessThan(wallBound(500));
  });

  it("names the expression's line:col, and the one that passed the limit among several", async () => {
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "300" });
    const located: unknown[] = [];
    const site = {
      path: ["steps", 2, "with"],
      locate: async (path: (string | number)[], body: string) => {
        located.push([path, body]);
        return { line: 12, column: 9 };
      },
    };
    const outcome = await Promise.allSettled([evaluateValue({ ok: "${{ inputs.n + 1 }}", slow: `text ${RECURSION}` }, scope, site)]);
    const error = limitOf(outcome[0]!);
    expect(error.message).toMatch(/^the expression at line 12:9 \(steps\[2\]\.with\.slow\) ran past its deadline of 300 ms/);
    expect(error.details).toMatchObject({ line: 12, column: 9, path: "steps[2].with.slow" });
    expect(located).toEqual([[["steps", 2, "with", "slow"], "($f := function($x){ $f($x+1) }; $f(inputs.n))"]]);
  });

  it("goes on evaluating after a process was killed", async () => {
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "200" });
    await expect(evaluateString(RECURSION, scope)).rejects.toMatchObject({ code: ErrorCode.EXPRESSION_LIMIT });
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "5000" });
    expect(await evaluateString("${{ inputs.n * 2 }}", scope)).toBe(2);
    expect(await Promise.all([1, 2, 3].map((n) => evaluateString(`\${{ inputs.n + ${n} }}`, scope)))).toEqual([2, 3, 4]);
  });

  it("counts the deadline from when an expression starts, not while it waits for a process", async () => {
    setLimits({ WORKFLOW_EXPRESSION_TIMEOUT_MS: "600" });
    // Both processes are busy until their deadline; the third expression waits longer than a deadline, then runs.
    const bombs = Promise.allSettled([evaluateString(RECURSION, scope), evaluateString(RECURSION, scope)]);
    const started = performance.now();
    expect(await evaluateString("${{ inputs.n + 41 }}", scope)).toBe(42);
    expect(performance.now() - started).toBeGreaterThan(600);
    for (const bomb of await bombs) limitOf(bomb);
  });

  it("reads plain paths on the main thread exactly as JSONata would", async () => {
    const paths = ["inputs.n", "inputs.list", "inputs.list.id", "inputs.nested", "inputs.one", "inputs.empty", "inputs.text.length", "inputs.nothing", "inputs.nothing.x", "inputs.object.a.b", "inputs.missing", "inputs.constructor", "steps.a.output.text", "steps.a.output.items.id", "steps.b.output", "steps.b.status", "steps.zzz.output"];
    for (const path of paths) {
      // Parentheses make the same expression not a plain path: it goes to a process.
      expect(await evaluateString(`\${{ ${path} }}`, scope), path).toEqual(await evaluateString(`\${{ (${path}) }}`, scope));
    }
    expect(await evaluateForEach({ v: "${{ item.id }}", i: "${{ index }}", t: "${{ item.id * 10 }}" }, scope, [{ item: { id: 1 }, index: 0 }, { item: { id: 2 }, index: 1 }])).toEqual([
      { v: 1, i: 0, t: 10 },
      { v: 2, i: 1, t: 20 },
    ]);
  });
});
