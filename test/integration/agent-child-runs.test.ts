import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { reconcileOnce } from "../../services/worker/reconciler.ts";
import type { FakeOpenAIServer, RecordedRequest } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { eventually, type TestApp } from "../support/test-app.ts";
import { workflowClient } from "../support/workflow-client.ts";

// Agents that run workflows as tools (issue #15, finding 6): a waiting agent holds no worker slot (the child run's end
// resumes it, as a `workflow` step's does), and the runs agents start count toward WORKFLOW_MAX_DEPTH.
let t: TestApp;
let fake: FakeOpenAIServer;
let key: string;
let projectId: string;
let harness: FakeProviderApp;
let workflows: ReturnType<typeof workflowClient>;
const depthBefore = process.env.WORKFLOW_MAX_DEPTH;

beforeAll(async () => {
  harness = await startFakeProviderApp({
    models: { "llm.default": { provider: "fake", model: "agent-model", retries: 0 } },
    app: { worker: { concurrency: 4 } }, // four workflow-step slots
  });
  ({ t, fake } = harness);
  ({ key, projectId } = await t.createProject());
  workflows = workflowClient(t, key);
});

afterAll(async () => {
  if (depthBefore === undefined) delete process.env.WORKFLOW_MAX_DEPTH;
  else process.env.WORKFLOW_MAX_DEPTH = depthBefore;
  await harness?.close();
});

afterEach(() => fake.reset());

const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** The model calls `tool` until it sees a tool's answer, then answers with it. */
function callThenAnswer(tool: string, args: unknown) {
  return (request: RecordedRequest) => {
    const last = request.body.messages.at(-1);
    if (last.role === "tool") return { kind: "chat" as const, content: `answer: ${last.content}` };
    return { kind: "chat" as const, toolCalls: [{ name: tool, arguments: args }] };
  };
}

it("six agents each waiting for a child workflow all finish on four step slots", async () => {
  const child = unique("child");
  await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${child}
inputs:
  text: { type: string }
steps:
  - id: upper
    uses: transform
    with: { loud: "\${{ $uppercase(inputs.text) }}" }
outputs:
  loud: "\${{ steps.upper.output.loud }}"
`);
  const parent = unique("asker");
  // A short agent timeout: an agent that held its slot while waiting would starve the children and fail by it.
  await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${parent}
steps:
  - id: ask
    uses: agent
    with:
      prompt: "shout hello"
      workflows: [${child}]
      maxIterations: 3
      timeoutMs: 45000
`);
  fake.setFallback(callThenAnswer(`workflow_${child}`, { text: "hello" }));
  const runIds = await Promise.all(Array.from({ length: 6 }, () => workflows.start(parent)));
  const runs = await Promise.all(runIds.map((id) => workflows.ended(id, 120_000)));
  for (const run of runs) {
    expect(run.error).toBeNull();
    expect(run.status).toBe("SUCCEEDED");
    const agent = run.steps.find((step) => step.key === "ask")!;
    expect(agent.output).toMatchObject({ toolCalls: 1, iterations: 2, text: expect.stringContaining("HELLO") });
    const [call] = run.steps.filter((step) => step.parentId === agent.id);
    expect(call!.status).toBe("SUCCEEDED");
    expect(call!.output).toMatchObject({ output: { loud: "HELLO" } });
    // The child run hangs from the call's row, so it is part of the run's tree (depth, cancellation).
    const childRun = await t.app.db.run.findFirstOrThrow({ where: { parentStepRunId: call!.id } });
    expect(childRun.status).toBe("SUCCEEDED");
  }
}, 180_000);

it("stops agent → workflow → agent recursion at WORKFLOW_MAX_DEPTH with a typed error the model is told", async () => {
  process.env.WORKFLOW_MAX_DEPTH = "3";
  const slug = unique("recursive");
  await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: again
    uses: agent
    with:
      prompt: "run yourself"
      workflows: [${slug}]
      maxIterations: 3
      timeoutMs: 60000
`);
  fake.setFallback(callThenAnswer(`workflow_${slug}`, {}));
  const top = await workflows.ended(await workflows.start(slug), 120_000);
  expect(top.status).toBe("SUCCEEDED");
  const version = await t.app.db.run.findUniqueOrThrow({ where: { id: top.id }, select: { workflowVersionId: true } });
  const all = await t.app.db.run.findMany({ where: { workflowVersionId: version.workflowVersionId }, include: { steps: true } });
  expect(all).toHaveLength(3);
  expect(all.every((run) => run.status === "SUCCEEDED")).toBe(true);
  const refused = all.flatMap((run) => run.steps).filter((step) => step.status === "FAILED");
  expect(refused).toHaveLength(1);
  expect(refused[0]!.error).toMatchObject({ code: "BAD_USER_INPUT", message: expect.stringContaining("the limit is 3") });
}, 180_000);

it("an agent waiting for a child run that waits for a person is left alone by the reconciler, and goes on after resumeRun", async () => {
  const child = unique("approval");
  await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${child}
steps:
  - id: approve
    uses: wait
    with: { prompt: "approve?" }
outputs:
  approved: "\${{ steps.approve.output.ok }}"
`);
  const parent = unique("waiter");
  await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${parent}
steps:
  - id: ask
    uses: agent
    with:
      prompt: "get an approval"
      workflows: [${child}]
      maxIterations: 3
`);
  fake.setFallback(callThenAnswer(`workflow_${child}`, {}));
  const runId = await workflows.start(parent);
  const childRun = await eventually(async () => {
    const calls = await t.app.db.stepRun.findMany({ where: { runId, parentId: { not: null } }, select: { id: true } });
    const found = await t.app.db.run.findFirst({ where: { parentStepRunId: { in: calls.map((call) => call.id) } } });
    return found?.status === "WAITING" ? found : null;
  }, 60_000);
  // Nothing of the parent runs while it waits, and the reconciler sees nothing lost (no grace: every row counts).
  const report = await reconcileOnce(t.app, { graceMs: 0, blobGraceMs: 3_600_000, maxRequeues: 3, projectIds: [projectId] });
  expect(report).toMatchObject({ jobsRequeued: 0, jobsFailed: 0, stepsRequeued: 0, stepsFailed: 0, runsAdvanced: 0 });
  expect((await t.app.db.run.findUniqueOrThrow({ where: { id: runId } })).status).toBe("RUNNING");

  const resumed = await t.graphql(`mutation ($id: ID!) { resumeRun(id: $id, stepId: "approve", input: { ok: true }) { id } }`, { id: childRun.id }, key);
  expect(resumed.errors).toBeUndefined();
  const run = await workflows.ended(runId, 60_000);
  expect(run.status).toBe("SUCCEEDED");
  expect(run.steps.find((step) => step.key === "ask")!.output).toMatchObject({ text: expect.stringContaining('"approved":true') });
}, 120_000);
