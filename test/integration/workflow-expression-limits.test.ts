import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeExpressionPool } from "../../workflows/dsl/expression.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// Expression bombs end their run (or the runWorkflow call) with EXPRESSION_LIMIT within the deadline, while the
// gateway keeps answering and the run row's lock is never held during an evaluation.
const RECURSION = "($f := function($x){ $f($x+1) }; $f(inputs.n))";
const RANGE_BOMB = "$count([1..10000000].($*2))";
const DEADLINE_MS = 1000;
// Picking up the advance job, starting and killing a process, on a loaded 2-core machine (a CI run beside other
// suites took 6.3 s for both runs). Before the limits the recursion never ended and the range bomb took ~20 s, so
// deadline + 10 s still tells the two apart.
const SLACK_MS = 10_000;
// The slowest health answer while the bombs run. Before the limits the gateway froze for 14 s or for good; on a
// loaded 2-core CI box a free event loop still answered in up to ~0.8 s (another suite's browser beside it), so
// 2.5 s tells a free loop from a frozen one without measuring the machine's load.
const HEALTH_BOUND_MS = 2_500;

let t: TestApp;
let key: string;
beforeAll(async () => {
  process.env.WORKFLOW_EXPRESSION_TIMEOUT_MS = String(DEADLINE_MS);
  t = await startTestApp({ worker: { concurrency: 4 } });
  ({ key } = await t.createProject());
});
afterEach(() => {
  process.env.WORKFLOW_EXPRESSION_TIMEOUT_MS = String(DEADLINE_MS);
});
afterAll(async () => {
  delete process.env.WORKFLOW_EXPRESSION_TIMEOUT_MS;
  await t?.close();
  await closeExpressionPool();
});

async function publish(source: string) {
  const response = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`, { d: source }, key);
  expect(response.errors).toBeUndefined();
}

function startRun(slug: string, input: unknown) {
  return t.graphql(`mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`, { slug, input }, key);
}

async function getRun(id: string) {
  const response = await t.graphql(`query ($id: ID!) { run(id: $id) { status error { code message details } steps { stepId status error { code message } } } }`, { id }, key);
  return response.data.run;
}

/** Calls `health` every 50 ms until `work` settles; the slowest answer, in ms. */
async function slowestHealthDuring<T>(work: Promise<T>): Promise<{ value: T; slowestMs: number; calls: number }> {
  let done = false;
  let slowestMs = 0;
  let calls = 0;
  const polling = (async () => {
    while (!done) {
      const started = performance.now();
      const response = await t.graphql(`{ health { status } }`);
      expect(response.data.health.status).toBeTruthy();
      slowestMs = Math.max(slowestMs, performance.now() - started);
      calls++;
      await sleep(50);
    }
  })();
  try {
    return { value: await work, slowestMs, calls };
  } finally {
    done = true;
    await polling;
  }
}

const workflow = (slug: string, step: string) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  n: { type: integer }
steps:
${step}`;

describe("workflow expression limits", () => {
  it("ends the recursive function's run and the range bomb's run with EXPRESSION_LIMIT within the deadline; health answers meanwhile", async () => {
    await publish(workflow("recursion-if", `  - id: a\n    uses: transform\n    if: "\${{ ${RECURSION} }}"\n    with: { v: 1 }\n`));
    await publish(workflow("range-bomb-with", `  - id: a\n    uses: transform\n    with: { v: "\${{ ${RANGE_BOMB} }}" }\n`));
    const started = performance.now();
    const runs = await Promise.all([startRun("recursion-if", { n: 1 }), startRun("range-bomb-with", { n: 1 })]);
    const ids = runs.map((response) => {
      expect(response.errors).toBeUndefined();
      return response.data.runWorkflow.id as string;
    });
    const { value: finished, slowestMs, calls } = await slowestHealthDuring(
      Promise.all(ids.map((id) => eventually(async () => ((await getRun(id)).status === "FAILED" ? getRun(id) : null), 30_000))),
    );
    expect(performance.now() - started).toBeLessThan(DEADLINE_MS + SLACK_MS);
    expect(calls).toBeGreaterThan(3);
    expect(slowestMs).toBeLessThan(HEALTH_BOUND_MS);

    const [recursion, bomb] = finished;
    expect(recursion.error.code).toBe("EXPRESSION_LIMIT");
    expect(recursion.steps[0]).toMatchObject({ stepId: "a", status: "FAILED", error: { code: "EXPRESSION_LIMIT" } });
    // `if:` is on line 9, its value's `${{` at column 10.
    expect(recursion.error.message).toContain("line 9:10 (steps[0].if) ran past its deadline of 1000 ms (WORKFLOW_EXPRESSION_TIMEOUT_MS)");
    expect(bomb.error.code).toBe("EXPRESSION_LIMIT");
    expect(bomb.error.message).toMatch(/line 9:17 \(steps\[0\]\.with\.v\) (ran past its deadline|used more than its \d+ MiB)/);
  });

  it("ends a runWorkflow call whose map items bomb with EXPRESSION_LIMIT, storing nothing; health answers meanwhile", async () => {
    await publish(
      workflow("recursion-items", `  - id: each\n    uses: map\n    with:\n      items: "\${{ ${RECURSION} }}"\n      step: { uses: transform, with: { v: "\${{ item }}" } }\n`),
    );
    const before = await t.app.db.run.count();
    const started = performance.now();
    const { value: response, slowestMs } = await slowestHealthDuring(startRun("recursion-items", { n: 1 }));
    expect(performance.now() - started).toBeLessThan(DEADLINE_MS + SLACK_MS);
    expect(slowestMs).toBeLessThan(HEALTH_BOUND_MS);
    expect(response.errors?.[0]?.extensions?.code).toBe("EXPRESSION_LIMIT");
    expect(response.errors?.[0]?.message).toContain("line 10:15 (steps[0].with.items)");
    expect(await t.app.db.run.count()).toBe(before);
  });

  it("holds no lock on the run while an `if` is evaluated: cancelRun returns at once, and the cancel wins", async () => {
    process.env.WORKFLOW_EXPRESSION_TIMEOUT_MS = "5000";
    await publish(workflow("slow-if", `  - id: a\n    uses: transform\n    if: "\${{ ${RECURSION} }}"\n    with: { v: 1 }\n`));
    const response = await startRun("slow-if", { n: 1 });
    const id = response.data.runWorkflow.id as string;
    await sleep(1500); // the advance job has picked the run up and is evaluating the `if` (5 s to its deadline)
    const started = performance.now();
    const cancelled = await t.graphql(`mutation ($id: ID!) { cancelRun(id: $id) { status } }`, { id }, key);
    const cancelMs = performance.now() - started;
    expect(cancelled.errors).toBeUndefined();
    expect(cancelled.data.cancelRun.status).toBe("CANCELLED");
    expect(cancelMs).toBeLessThan(1000);
    // The evaluation ends at its deadline; the plan made after it sees the cancel and writes nothing.
    await sleep(5000);
    const run = await getRun(id);
    expect(run.status).toBe("CANCELLED");
    expect(run.steps[0].status).toBe("CANCELLED");
  });
});
