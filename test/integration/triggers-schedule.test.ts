import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorkerPool } from "../../services/worker/worker-pool.ts";
import { schedulerId } from "../../workflows/triggers/trigger-schedules.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const PUBLISH = `mutation ($d: String!) { publishWorkflow(definition: $d) { id number } }`;
const TRIGGERS = `query ($slug: String!) { workflow(slug: $slug) { triggers { id kind cron timezone paused fromFile nextRunAt input } } }`;

const workflow = (slug: string, on = "") => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  text: { type: string }
steps:
  - id: echo
    uses: transform
    with: { text: "\${{ inputs.text }}" }
outputs:
  text: "\${{ steps.echo.output.text }}"
${on}`;

async function waitFor<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const runsOf = (projectId: string) => t.app.db.run.count({ where: { projectId } });

/** No job of the trigger queue is waiting or running: a paused schedule can start nothing more. */
async function triggerQueueIdle() {
  const queue = t.app.queues.queue("workflow-trigger");
  await waitFor("the trigger queue to drain", () => queue.getJobCounts("active", "wait", "delayed", "prioritized"), (counts) => Object.values(counts).every((n) => n === 0));
}

describe("schedule triggers", () => {
  it("a schedule in the file runs the workflow at its times; pause stops it, resume starts it again, delete removes it", async () => {
    const { key, projectId } = await t.createProject();
    const published = await t.graphql(PUBLISH, { d: workflow("ticker", `on:\n  schedule:\n    - cron: "* * * * * *"\n      timezone: Europe/Paris\n      input: { text: tick }\n`) }, key);
    expect(published.errors).toBeUndefined();

    const listed = await t.graphql(TRIGGERS, { slug: "ticker" }, key);
    expect(listed.errors).toBeUndefined();
    const [trigger] = listed.data.workflow.triggers;
    expect(trigger).toMatchObject({ kind: "SCHEDULE", cron: "* * * * * *", timezone: "Europe/Paris", paused: false, fromFile: true, input: { text: "tick" } });
    expect(trigger.nextRunAt).toBeTruthy();

    // Runs appear on their own, with the trigger's input, and succeed.
    await waitFor("two scheduled runs", () => runsOf(projectId), (n) => n >= 2);
    const run = await waitFor("a scheduled run to succeed", () => t.app.db.run.findFirst({ where: { projectId, status: "SUCCEEDED" } }), Boolean);
    expect(run!.input).toEqual({ text: "tick" });
    expect(run!.output).toEqual({ text: "tick" });

    const paused = await t.graphql(`mutation ($id: ID!) { pauseTrigger(id: $id) { paused nextRunAt } }`, { id: trigger.id }, key);
    expect(paused.errors).toBeUndefined();
    expect(paused.data.pauseTrigger).toEqual({ paused: true, nextRunAt: null });
    expect(await t.app.queues.queue("workflow-trigger").getJobScheduler(schedulerId(trigger.id))).toBeUndefined();
    await triggerQueueIdle();
    const atPause = await runsOf(projectId);
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect(await runsOf(projectId)).toBe(atPause);

    const resumed = await t.graphql(`mutation ($id: ID!) { resumeTrigger(id: $id) { paused } }`, { id: trigger.id }, key);
    expect(resumed.data.resumeTrigger.paused).toBe(false);
    await waitFor("a run after resume", () => runsOf(projectId), (n) => n > atPause);

    const deleted = await t.graphql(`mutation ($id: ID!) { deleteTrigger(id: $id) { id } }`, { id: trigger.id }, key);
    expect(deleted.errors).toBeUndefined();
    expect(await t.app.db.workflowTrigger.count({ where: { projectId } })).toBe(0);
    expect(await t.app.queues.queue("workflow-trigger").getJobScheduler(schedulerId(trigger.id))).toBeUndefined();
    await triggerQueueIdle();
    const atDelete = await runsOf(projectId);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(await runsOf(projectId)).toBe(atDelete);
  }, 180_000);

  it("publishing a file without the schedule removes it; with a changed one updates it in place", async () => {
    const { key, projectId } = await t.createProject();
    await t.graphql(PUBLISH, { d: workflow("hourly", `on:\n  schedule:\n    - cron: "0 * * * *"\n      input: { text: a }\n`) }, key);
    const [first] = (await t.graphql(TRIGGERS, { slug: "hourly" }, key)).data.workflow.triggers;
    await t.graphql(PUBLISH, { d: workflow("hourly", `on:\n  schedule:\n    - cron: "30 * * * *"\n      input: { text: b }\n`) }, key);
    const [second] = (await t.graphql(TRIGGERS, { slug: "hourly" }, key)).data.workflow.triggers;
    expect(second).toMatchObject({ id: first.id, cron: "30 * * * *", input: { text: "b" } });
    const scheduler = await t.app.queues.queue("workflow-trigger").getJobScheduler(schedulerId(first.id));
    expect(scheduler?.pattern).toBe("30 * * * *");

    await t.graphql(PUBLISH, { d: workflow("hourly") }, key);
    expect((await t.graphql(TRIGGERS, { slug: "hourly" }, key)).data.workflow.triggers).toEqual([]);
    expect(await t.app.queues.queue("workflow-trigger").getJobScheduler(schedulerId(first.id))).toBeUndefined();
    expect(await t.app.db.workflowTrigger.count({ where: { projectId } })).toBe(0);
  });

  it("createScheduleTrigger over GraphQL: a short cron in a time zone runs; a bad pattern or zone is refused and stores nothing", async () => {
    const { key, projectId } = await t.createProject();
    await t.graphql(PUBLISH, { d: workflow("api-ticker") }, key);
    const CREATE = `mutation ($cron: String!, $tz: String) { createScheduleTrigger(slug: "api-ticker", cron: $cron, timezone: $tz, input: { text: "api" }) { id cron timezone fromFile } }`;

    const badCron = await t.graphql(CREATE, { cron: "61 * * * *" }, key);
    expect(badCron.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(badCron.errors?.[0]?.message).toContain("cron");
    const badZone = await t.graphql(CREATE, { cron: "* * * * *", tz: "Mars/Olympus" }, key);
    expect(badZone.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(badZone.errors?.[0]?.message).toContain("time zone");
    const noWorkflow = await t.graphql(CREATE.replace("api-ticker", "missing"), { cron: "* * * * *" }, key);
    expect(noWorkflow.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(await t.app.db.workflowTrigger.count({ where: { projectId } })).toBe(0);

    const created = await t.graphql(CREATE, { cron: "*/2 * * * * *", tz: "Asia/Kolkata" }, key);
    expect(created.errors).toBeUndefined();
    expect(created.data.createScheduleTrigger).toMatchObject({ cron: "*/2 * * * * *", timezone: "Asia/Kolkata", fromFile: false });
    const run = await waitFor("a run of the API schedule", () => t.app.db.run.findFirst({ where: { projectId } }), Boolean);
    expect(run!.input).toEqual({ text: "api" });
    // Another project cannot see or touch it.
    const other = await t.createProject();
    const foreign = await t.graphql(`mutation ($id: ID!) { pauseTrigger(id: $id) { id } }`, { id: created.data.createScheduleTrigger.id }, other.key);
    expect(foreign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    await t.graphql(`mutation ($id: ID!) { deleteTrigger(id: $id) { id } }`, { id: created.data.createScheduleTrigger.id }, key);
  }, 120_000);

  it("times missed while no worker runs do not pile up: one job waits, the first worker back makes one catch-up run and goes on", async () => {
    const idle = await startTestApp(); // a gateway without a worker
    try {
      const { key, projectId } = await idle.createProject();
      await idle.graphql(PUBLISH, { d: workflow("missed", `on:\n  schedule:\n    - cron: "* * * * * *"\n      input: { text: late }\n`) }, key);
      const queue = idle.app.queues.queue("workflow-trigger");
      await new Promise((resolve) => setTimeout(resolve, 4000)); // four firing times pass with nobody to run them
      const counts = await queue.getJobCounts("delayed", "wait", "prioritized", "active");
      expect(Object.values(counts).reduce((sum, n) => sum + n, 0)).toBe(1);
      expect(await idle.app.db.run.count({ where: { projectId } })).toBe(0);

      const worker = startWorkerPool(idle.app, { queues: ["workflow-trigger", "workflow-run", "workflow-step"], modelCalls: false });
      try {
        await waitFor("runs once a worker is back", () => idle.app.db.run.count({ where: { projectId } }), (n) => n >= 2);
      } finally {
        await worker.close();
      }
    } finally {
      await idle.close();
    }
  }, 120_000);
});
