import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  // No model manifests: a text asset becomes READY without encoder weights, which is all these tests need.
  t = await startTestApp({ worker: true, noModels: true });
});
afterAll(async () => {
  await t?.close();
});

const PUBLISH = `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`;
const INGEST = `mutation ($text: String!, $tags: [String!]) { ingest(input: { text: $text, tags: $tags }) { asset { id } job { id } } }`;

const onAsset = (slug: string, inputs: string, on: string) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
${inputs}
steps:
  - id: echo
    uses: transform
    with: { seen: true }
on:
  asset:
${on}`;

async function waitFor<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Ingests text and waits until its job is done and every project event it made has been handled. */
async function ingestAndSettle(key: string, text: string, tags: string[]) {
  const made = await t.graphql(INGEST, { text, tags }, key);
  expect(made.errors).toBeUndefined();
  const { asset, job } = made.data.ingest;
  await waitFor("the ingest job", () => t.app.db.job.findUniqueOrThrow({ where: { id: job.id } }), (row) => row.status === "SUCCEEDED" || row.status === "FAILED");
  expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).status).toBe("READY");
  const queue = t.app.queues.queue("project-event");
  await waitFor("the project events", () => queue.getJobCounts("active", "wait", "delayed", "prioritized"), (counts) => Object.values(counts).every((n) => n === 0));
  return asset.id as string;
}

async function runsBySlug(projectId: string) {
  const runs = await t.app.db.run.findMany({ where: { projectId }, include: { workflowVersion: { include: { workflow: true } } }, orderBy: { createdAt: "asc" } });
  const bySlug: Record<string, unknown[]> = {};
  for (const run of runs) (bySlug[run.workflowVersion.workflow.slug] ??= []).push(run.input);
  return bySlug;
}

describe("asset triggers", () => {
  it("an asset of the trigger's modality with all its tags starts a run when it becomes READY; others do not", async () => {
    const { key, projectId } = await t.createProject();
    const publish = async (source: string) => expect((await t.graphql(PUBLISH, { d: source }, key)).errors).toBeUndefined();
    await publish(onAsset("invoices", "  doc: { type: asset, modality: TEXT }", "    - modality: TEXT\n      tags: [invoice]"));
    await publish(onAsset("images-only", "  picture: { type: asset }", "    - modality: IMAGE"));
    await publish(onAsset("mapped", "  id: { type: string }\n  first: { type: string, required: false }", '    - input: { id: "${{ asset.id }}", first: "${{ asset.tags[0] }}" }'));
    await publish(onAsset("paused", "  doc: { type: asset }", "    - tags: []"));
    const paused = await t.graphql(`{ workflow(slug: "paused") { triggers { id } } }`, {}, key);
    await t.graphql(`mutation ($id: ID!) { pauseTrigger(id: $id) { paused } }`, { id: paused.data.workflow.triggers[0].id }, key);

    const invoice = await ingestAndSettle(key, "invoice 42: two widgets", ["invoice", "2026"]);
    await waitFor("the invoice runs", () => runsBySlug(projectId), (runs) => (runs.invoices?.length ?? 0) >= 1 && (runs.mapped?.length ?? 0) >= 1);
    const note = await ingestAndSettle(key, "a note, no tags", []);
    await waitFor("the note's mapped run", () => runsBySlug(projectId), (runs) => (runs.mapped?.length ?? 0) >= 2);

    const runs = await runsBySlug(projectId);
    expect(runs.invoices).toEqual([{ doc: invoice }]);
    expect(runs.mapped).toEqual([{ id: invoice, first: "invoice" }, { id: note }]);
    expect(runs["images-only"]).toBeUndefined();
    expect(runs.paused).toBeUndefined();

    // Re-indexing makes the asset READY again: a repair, not a new arrival, so no trigger runs again.
    const reindexed = await t.graphql(`mutation ($id: ID!) { reindexAsset(id: $id) { job { id } } }`, { id: invoice }, key);
    expect(reindexed.errors).toBeUndefined();
    const job = reindexed.data.reindexAsset.job.id;
    await waitFor("the re-index", () => t.app.db.job.findUniqueOrThrow({ where: { id: job } }), (row) => row.status === "SUCCEEDED");
    const events = t.app.queues.queue("project-event");
    await waitFor("the project events", () => events.getJobCounts("active", "wait", "delayed", "prioritized"), (counts) => Object.values(counts).every((n) => n === 0));
    expect(await runsBySlug(projectId)).toEqual(runs);

    // Another project's asset starts nothing here.
    const other = await t.createProject();
    await ingestAndSettle(other.key, "invoice from elsewhere", ["invoice"]);
    expect(await runsBySlug(projectId)).toEqual(runs);
    expect(await t.app.db.run.count({ where: { projectId: other.projectId } })).toBe(0);
  }, 240_000);
});
