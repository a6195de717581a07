import { afterAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

const apps: TestApp[] = [];
afterAll(async () => {
  for (const app of apps) await app.close().catch(() => {});
});

it("a run waiting for a person survives a full restart and finishes when resumed on the new instance", async () => {
  const before = await startTestApp({ worker: true });
  apps.push(before);
  const { key } = await before.createProject();
  const published = await before.graphql(
    `mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`,
    {
      d: `apiVersion: tessera/v1
kind: Workflow
slug: approve-then-publish
inputs:
  title: { type: string }
steps:
  - id: approve
    uses: wait
    with: { prompt: "Publish \${{ inputs.title }}?", fields: { approved: { type: boolean } } }
  - id: publish
    uses: transform
    if: "\${{ steps.approve.output.approved }}"
    with: { text: "published \${{ inputs.title }}" }
outputs:
  text: "\${{ steps.publish.output.text }}"
`,
    },
    key,
  );
  expect(published.errors).toBeUndefined();
  const started = await before.graphql(`mutation { runWorkflow(slug: "approve-then-publish", input: { title: "Q3 report" }) { id } }`, {}, key);
  const runId = started.data.runWorkflow.id;
  await eventually(async () => (await before.app.db.run.findUniqueOrThrow({ where: { id: runId } })).status === "WAITING");
  await before.close(); // gateway, worker, queues and connections all gone
  apps.length = 0;

  const after = await startTestApp({ worker: true });
  apps.push(after);
  const waiting = await after.graphql(`query ($id: ID!) { run(id: $id) { status steps { id status } } }`, { id: runId }, key);
  expect(waiting.data.run.status).toBe("WAITING");
  const resumed = await after.graphql(
    `mutation ($id: ID!) { resumeRun(id: $id, stepId: "approve", input: { approved: true }) { id } }`,
    { id: runId },
    key,
  );
  expect(resumed.errors).toBeUndefined();
  const run = await eventually(async () => {
    const row = await after.app.db.run.findUniqueOrThrow({ where: { id: runId } });
    return row.status === "SUCCEEDED" || row.status === "FAILED" ? row : null;
  });
  expect(run.status).toBe("SUCCEEDED");
  expect(run.output).toEqual({ text: "published Q3 report" });
});
