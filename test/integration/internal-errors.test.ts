import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createLogger } from "../../services/core/logger.ts";
import { startWorkerPool, type WorkerPool } from "../../services/worker/worker-pool.ts";
import { registerStepType } from "../../workflows/steps/step-registry.ts";
import { defineStepType } from "../../workflows/steps/step-type.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * Errors that are not Tessera's own (a file path, Prisma's or a store's
 * words) reach callers as a code and a safe message; their raw text is in the
 * logs, under the job or step it happened in.
 */
const RAW = "Invalid `prisma.asset.update()` invocation in /srv/tessera/services/assets/asset-records.ts:42:7 weaviate: tenant tessera_p1 not found";
registerStepType(
  defineStepType({
    uses: "test.internal-failure",
    description: "fails with an error that is not a TesseraError",
    with: z.object({}),
    output: z.object({}),
    async run() {
      throw new Error(RAW);
    },
  }),
);

const logLines: string[] = [];
let t: TestApp;
let worker: WorkerPool | undefined;
let project: { key: string; projectId: string };
beforeAll(async () => {
  t = await startTestApp();
  // The worker logs into `logLines`, so the test can find the raw text where it belongs.
  (t.app as { logger: unknown }).logger = createLogger(
    "info",
    "test",
    new Writable({
      write(chunk, _encoding, callback) {
        logLines.push(...String(chunk).split("\n").filter(Boolean));
        callback();
      },
    }),
  );
  project = await t.createProject();
});
afterAll(async () => {
  await worker?.close();
  await t?.close();
});

const leaks = /prisma|asset-records|\/srv\/tessera|weaviate|tenant tessera_p1|ENOENT|\.data|blobs/i;

describe("errors that are not Tessera's own", () => {
  it("a job and its asset keep a code and a safe message; the raw text is logged under the job", async () => {
    const ingested = await t.graphql(`mutation { ingest(input: { text: "bytes that vanish from the blob store" }) { asset { id sha256 } job { id } } }`, {}, project.key);
    const { asset, job } = ingested.data.ingest;
    // The bytes are gone before a worker takes the job (a disk wiped, a volume not mounted): the ingest stage fails with a plain Error.
    await t.app.blobs.delete(asset.sha256);
    worker = startWorkerPool(t.app);
    const failed = await eventually(async () => {
      const answer = await t.graphql(`query($id: ID!) { job(id: $id) { status error { code message } } asset(id: "${asset.id}") { status error } }`, { id: job.id }, project.key);
      expect(answer.errors).toBeUndefined();
      return answer.data.job.status === "FAILED" ? answer.data : null;
    }, 30_000);
    expect(failed.job.error.code).toBe("INTERNAL");
    expect(failed.job.error.message).toContain(job.id);
    expect(JSON.stringify(failed)).not.toMatch(leaks);
    expect(JSON.stringify(failed)).not.toContain("missing from the blob store");
    expect(failed.asset.status).toBe("FAILED");
    const logged = logLines.filter((line) => line.includes(job.id) && line.includes('"job failed"'));
    expect(logged.some((line) => line.includes("is missing from the blob store"))).toBe(true);
  });

  it("a failed step and its run keep a code and a safe message; the raw text is logged under the step", async () => {
    worker ??= startWorkerPool(t.app);
    const slug = `internal-failure-${Math.random().toString(36).slice(2, 8)}`;
    const published = await t.graphql(
      `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`,
      { d: `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug}\nsteps:\n  - id: breaks\n    uses: test.internal-failure\n` },
      project.key,
    );
    expect(published.errors).toBeUndefined();
    const started = await t.graphql(`mutation ($slug: String!) { runWorkflow(slug: $slug) { id } }`, { slug }, project.key);
    const runId = started.data.runWorkflow.id;
    const run = await eventually(async () => {
      const answer = await t.graphql(`query($id: ID!) { run(id: $id) { status error { code message details } steps { id status error { code message details } } } }`, { id: runId }, project.key);
      return answer.data.run.status === "FAILED" ? answer.data.run : null;
    }, 30_000);
    expect(run.steps[0].error.code).toBe("INTERNAL");
    expect(run.error.code).toBe("INTERNAL");
    expect(JSON.stringify(run)).not.toMatch(leaks);
    expect(logLines.some((line) => line.includes(RAW.slice(0, 30)) && line.includes(runId))).toBe(true);
  });
});
