import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { registerStepType } from "../../workflows/steps/step-registry.ts";
import { defineStepType } from "../../workflows/steps/step-type.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// Step types that exist only in this test: they make failures, slowness and attempts observable.
const attemptsSeen = new Map<string, number>();
registerStepType(
  defineStepType({
    uses: "test.flaky",
    description: "fails until attempt `succeedOn`",
    with: z.object({ name: z.string(), succeedOn: z.number().int() }),
    output: z.object({ attempt: z.number() }),
    async run(input, context) {
      attemptsSeen.set(input.name, (attemptsSeen.get(input.name) ?? 0) + 1);
      if (context.attempt < input.succeedOn) throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `attempt ${context.attempt} fails`);
      return { attempt: context.attempt };
    },
  }),
);
const slowStarted = new Set<string>();
const slowAborted = new Set<string>();
registerStepType(
  defineStepType({
    uses: "test.slow",
    description: "sleeps, honouring the abort signal",
    with: z.object({ name: z.string(), ms: z.number() }),
    output: z.object({ slept: z.number() }),
    async run(input, context) {
      slowStarted.add(input.name);
      try {
        await sleep(input.ms, undefined, { signal: context.signal });
      } catch (error) {
        slowAborted.add(input.name);
        throw error;
      }
      return { slept: input.ms };
    },
  }),
);

let t: TestApp;
let key: string;
let projectId: string;
beforeAll(async () => {
  t = await startTestApp({ worker: { concurrency: 8 } });
  ({ key, projectId } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

const RUN_FIELDS = `id status output error { code message details } version { number } steps { id stepId status output error { code message } attempts startedAt finishedAt }`;

async function publish(source: string) {
  const response = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { id number slug } }`, { d: source }, key);
  expect(response.errors).toBeUndefined();
  return response.data.publishWorkflow as { id: string; number: number; slug: string };
}

async function run(slug: string, input: unknown = {}, version?: number) {
  const response = await t.graphql(
    `mutation ($slug: String!, $input: JSON, $version: Int) { runWorkflow(slug: $slug, input: $input, version: $version) { id status } }`,
    { slug, input, version },
    key,
  );
  expect(response.errors).toBeUndefined();
  return response.data.runWorkflow.id as string;
}

async function getRun(id: string) {
  const response = await t.graphql(`query ($id: ID!) { run(id: $id) { ${RUN_FIELDS} } }`, { id }, key);
  expect(response.errors).toBeUndefined();
  return response.data.run;
}

async function finished(id: string, timeoutMs = 30_000) {
  return eventually(async () => {
    const current = await getRun(id);
    return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(current.status) ? current : null;
  }, timeoutMs);
}

async function reaches(id: string, status: string) {
  return eventually(async () => {
    const current = await getRun(id);
    return current.status === status ? current : null;
  });
}

const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

describe("the engine", () => {
  it("runs independent steps in parallel, then the steps that need them, and evaluates outputs", async () => {
    const slug = unique("fan-in");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  name: { type: string }
  times: { type: integer, default: 2 }
steps:
  - id: left
    uses: test.slow
    with: { name: "${slug}-left", ms: 600 }
  - id: right
    uses: test.slow
    with: { name: "${slug}-right", ms: 600 }
  - id: greet
    uses: transform
    needs: [left, right]
    with:
      text: "hello \${{ inputs.name }}"
      total: "\${{ steps.left.output.slept + steps.right.output.slept }}"
outputs:
  greeting: "\${{ steps.greet.output.text }}"
  total: "\${{ steps.greet.output.total * inputs.times }}"
`);
    const result = await finished(await run(slug, { name: "Ada" }));
    expect(result.status).toBe("SUCCEEDED");
    expect(result.output).toEqual({ greeting: "hello Ada", total: 2400 });
    // The two 600 ms steps ran at the same time, not one after the other: each started before the other ended.
    // (Their own timestamps, not the wall clock of the whole run, which a loaded machine stretches.)
    const slow = result.steps.filter((step: { stepId: string }) => ["left", "right"].includes(step.stepId));
    expect(slow).toHaveLength(2);
    const [a, b] = slow.map((step: { startedAt: string; finishedAt: string }) => ({ start: Date.parse(step.startedAt), end: Date.parse(step.finishedAt) }));
    expect(a.start).toBeLessThan(b.end);
    expect(b.start).toBeLessThan(a.end);
    expect(result.steps.map((step: { id: string; status: string }) => [step.id, step.status])).toEqual(
      expect.arrayContaining([["left", "SUCCEEDED"], ["right", "SUCCEEDED"], ["greet", "SUCCEEDED"]]),
    );
  });

  it("skips a step whose `if` is false and still runs the steps after it", async () => {
    const slug = unique("branch");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  loud: { type: boolean }
steps:
  - id: shout
    uses: transform
    if: inputs.loud
    with: { text: "HELLO" }
  - id: whisper
    uses: transform
    if: "\${{ $not(inputs.loud) }}"
    with: { text: "hello" }
  - id: pick
    uses: transform
    needs: [shout, whisper]
    with: { text: "\${{ steps.shout.status = 'SUCCEEDED' ? steps.shout.output.text : steps.whisper.output.text }}" }
outputs:
  text: "\${{ steps.pick.output.text }}"
`);
    const quiet = await finished(await run(slug, { loud: false }));
    expect(quiet.status).toBe("SUCCEEDED");
    expect(quiet.output).toEqual({ text: "hello" });
    expect(quiet.steps.find((step: { id: string }) => step.id === "shout").status).toBe("SKIPPED");
    const loud = await finished(await run(slug, { loud: true }));
    expect(loud.output).toEqual({ text: "HELLO" });
  });

  it("fans a map out with a concurrency limit and collects results in item order", async () => {
    const slug = unique("map");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  words: { type: array }
steps:
  - id: each
    uses: map
    with:
      items: "\${{ inputs.words }}"
      concurrency: 3
      step:
        uses: transform
        with: { word: "\${{ $uppercase(item) }}", position: "\${{ index }}" }
outputs:
  words: "\${{ steps.each.output.results.word }}"
  positions: "\${{ steps.each.output.results.position }}"
`);
    const words = Array.from({ length: 12 }, (_, index) => `w${index}`);
    const result = await finished(await run(slug, { words }));
    expect(result.status).toBe("SUCCEEDED");
    expect(result.output.words).toEqual(words.map((word) => word.toUpperCase()));
    expect(result.output.positions).toEqual(words.map((_, index) => index));
    expect(result.steps.filter((step: { stepId: string }) => step.stepId === "each")).toHaveLength(13);
  });

  it("keeps at most `concurrency` items of a map running at once", async () => {
    const slug = unique("map-limit");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: each
    uses: map
    with:
      items: [1, 2, 3, 4, 5, 6]
      concurrency: 2
      step: { uses: test.slow, with: { name: "${slug}-\${{ item }}", ms: 300 } }
`);
    const runId = await run(slug);
    let most = 0;
    while (true) {
      const current = await getRun(runId);
      const running = current.steps.filter((step: { id: string; status: string }) => step.id.startsWith("each[") && step.status === "RUNNING").length;
      most = Math.max(most, running);
      if (current.status !== "RUNNING" && current.status !== "QUEUED") break;
      await sleep(50);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2);
    expect((await getRun(runId)).status).toBe("SUCCEEDED");
  });

  it("retries a failing step with backoff and records its attempts", async () => {
    const slug = unique("retry");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: flaky
    uses: test.flaky
    retry: { attempts: 3, backoffMs: 50 }
    with: { name: "${slug}", succeedOn: 3 }
outputs:
  attempt: "\${{ steps.flaky.output.attempt }}"
`);
    const result = await finished(await run(slug));
    expect(result.status).toBe("SUCCEEDED");
    expect(result.output).toEqual({ attempt: 3 });
    expect(result.steps[0].attempts).toBe(3);
    expect(attemptsSeen.get(slug)).toBe(3);
  });

  it("fails the run when a step runs out of attempts, with the step's error", async () => {
    const slug = unique("retry-out");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: flaky
    uses: test.flaky
    retry: { attempts: 2, backoffMs: 10 }
    with: { name: "${slug}", succeedOn: 5 }
  - id: after
    uses: transform
    needs: [flaky]
    with: { x: 1 }
`);
    const result = await finished(await run(slug));
    expect(result.status).toBe("FAILED");
    expect(result.error.code).toBe("SERVICE_UNAVAILABLE");
    expect(result.error.details.stepId).toBe("flaky");
    const steps = Object.fromEntries(result.steps.map((step: { id: string }) => [step.id, step]));
    expect(steps.flaky.status).toBe("FAILED");
    expect(steps.flaky.attempts).toBe(2);
    expect(steps.after.status).toBe("CANCELLED");
    expect(attemptsSeen.get(slug)).toBe(2);
  });

  it("times a step out", async () => {
    const slug = unique("timeout");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: slow
    uses: test.slow
    timeout: 200ms
    with: { name: "${slug}", ms: 20000 }
`);
    const result = await finished(await run(slug));
    expect(result.status).toBe("FAILED");
    expect(result.steps[0].error.code).toBe("TIMEOUT");
    expect(slowAborted.has(slug)).toBe(true);
  });

  it("cancels a run: the running step is aborted and queued steps never start", async () => {
    const slug = unique("cancel");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: slow
    uses: test.slow
    with: { name: "${slug}", ms: 30000 }
  - id: later
    uses: test.slow
    needs: [slow]
    with: { name: "${slug}-later", ms: 10 }
`);
    const runId = await run(slug);
    await eventually(async () => slowStarted.has(slug));
    const cancelled = await t.graphql(`mutation ($id: ID!) { cancelRun(id: $id) { id status } }`, { id: runId }, key);
    expect(cancelled.errors).toBeUndefined();
    expect(cancelled.data.cancelRun.status).toBe("CANCELLED");
    await eventually(async () => slowAborted.has(slug), 5000);
    await sleep(300);
    const result = await getRun(runId);
    expect(result.status).toBe("CANCELLED");
    expect(result.steps.map((step: { status: string }) => step.status)).toEqual(["CANCELLED", "CANCELLED"]);
    expect(slowStarted.has(`${slug}-later`)).toBe(false);
  });

  it("pauses at a wait step until resumeRun, checks the resume input, and pins the version it started with", async () => {
    const slug = unique("approval");
    const definition = (greeting: string) => `
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: approve
    uses: wait
    with:
      prompt: "Publish?"
      fields: { approved: { type: boolean }, note: { type: string, required: false } }
  - id: result
    uses: transform
    with: { text: "${greeting} \${{ steps.approve.output.approved }}" }
outputs:
  text: "\${{ steps.result.output.text }}"
`;
    const v1 = await publish(definition("v1"));
    const runId = await run(slug);
    const waiting = await reaches(runId, "WAITING");
    expect(waiting.steps.find((step: { id: string }) => step.id === "approve").status).toBe("WAITING");
    expect(waiting.version.number).toBe(v1.number);

    const v2 = await publish(definition("v2"));
    expect(v2.number).toBe(v1.number + 1);

    const bad = await t.graphql(
      `mutation ($id: ID!) { resumeRun(id: $id, stepId: "approve", input: { approved: "yes" }) { id } }`,
      { id: runId },
      key,
    );
    expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect((await getRun(runId)).status).toBe("WAITING");

    const resumed = await t.graphql(
      `mutation ($id: ID!) { resumeRun(id: $id, stepId: "approve", input: { approved: true }) { id } }`,
      { id: runId },
      key,
    );
    expect(resumed.errors).toBeUndefined();
    const result = await finished(runId);
    expect(result.status).toBe("SUCCEEDED");
    expect(result.output).toEqual({ text: "v1 true" });

    const again = await t.graphql(`mutation ($id: ID!) { resumeRun(id: $id, stepId: "approve", input: { approved: true }) { id } }`, { id: runId }, key);
    expect(again.errors?.[0]?.extensions?.code).toBe("CONFLICT");
  });

  it("runs another published workflow as a child run", async () => {
    const child = unique("child");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${child}
inputs:
  n: { type: number }
steps:
  - id: double
    uses: transform
    with: { value: "\${{ inputs.n * 2 }}" }
outputs:
  doubled: "\${{ steps.double.output.value }}"
`);
    const parent = unique("parent");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${parent}
steps:
  - id: call
    uses: workflow
    with: { slug: ${child}, input: { n: 21 } }
outputs:
  answer: "\${{ steps.call.output.doubled }}"
`);
    const result = await finished(await run(parent));
    expect(result.status).toBe("SUCCEEDED");
    expect(result.output).toEqual({ answer: 42 });
  });

  it("stops workflows that call each other in a loop at the nesting limit", async () => {
    const a = unique("loop-a");
    const b = unique("loop-b");
    const calling = (slug: string, callee: string) => `
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: call
    uses: workflow
    with: { slug: ${callee} }
`;
    await publish(calling(a, b));
    await publish(calling(b, a));
    const result = await finished(await run(a), 60_000);
    expect(result.status).toBe("FAILED");
    expect(result.error.message).toMatch(/nest 9 runs deep; the limit is 8/);
    const runs = await t.app.db.run.count({ where: { projectId, workflowVersion: { workflow: { slug: { in: [a, b] } } } } });
    expect(runs).toBe(8);
  });

  it("refuses an http step to a private address with the SSRF guard, and the server is never called", async () => {
    const { createServer } = await import("node:http");
    let calls = 0;
    const server = createServer((_request, response) => {
      calls++;
      response.end("secret");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const slug = unique("ssrf");
      await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: peek
    uses: http
    with: { url: "http://127.0.0.1:${port}/admin" }
`);
      const result = await finished(await run(slug));
      expect(result.status).toBe("FAILED");
      expect(result.steps[0].error.code).toBe("URL_NOT_ALLOWED");
      expect(calls).toBe(0);
    } finally {
      server.close();
    }
  });

  it("streams run events over the runEvents subscription (SSE)", async () => {
    const slug = unique("events");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: a
    uses: test.slow
    with: { name: "${slug}", ms: 300 }
  - id: b
    uses: transform
    needs: [a]
    with: { x: 1 }
`);
    const runId = await run(slug);
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: `subscription ($id: ID!) { runEvents(id: $id) { type stepId status runStatus stepStatus at } }`, variables: { id: runId } }),
    });
    const text = await response.text();
    const events = text
      .split("\n")
      .filter((line) => line.startsWith("data: "))
      .map((line) => JSON.parse(line.slice(6)).data?.runEvents)
      .filter(Boolean);
    const last = events[events.length - 1];
    expect(last).toMatchObject({ type: "RUN_STATUS", status: "SUCCEEDED", runStatus: "SUCCEEDED", stepStatus: null });
    expect(events.some((event) => event.type === "STEP_FINISHED" && event.stepId === "b" && event.stepStatus === "SUCCEEDED" && event.runStatus === null)).toBe(true);
    // `at` is a DateTime: an RFC 3339 instant in UTC.
    for (const event of events) expect(event.at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  });
});
