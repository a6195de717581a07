import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

const root = path.resolve(import.meta.dirname, "..", "..");

// A counting HTTP server: the steps call it, so we can see how often each really ran.
const hits = new Map<string, number>();
let server: Server;
let port: number;
let t: TestApp;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    const name = request.url!.split("/").pop()!;
    const count = (hits.get(name) ?? 0) + 1;
    hits.set(name, count);
    // The first call to a "hang" URL never answers: the worker is killed while it waits.
    if (request.url!.startsWith("/hang/") && count === 1) return;
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name, count }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  t = await startTestApp(); // a gateway only: the workers are real processes, started below
});

afterAll(async () => {
  for (const worker of workers) worker.kill("SIGKILL");
  server?.closeAllConnections();
  server?.close();
  await t?.close();
});

/** A worker process of its own (node with the tsx loader, one process, so SIGKILL kills it all). */
function startWorker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "services/worker/main.ts"], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: t.app.config.QUEUE_PREFIX,
      DATA_DIR: t.app.config.dataDir,
      URL_ALLOW_HOSTS: `127.0.0.1:${port}`,
      LOG_LEVEL: "info",
    },
  });
  workers.push(child);
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`worker did not start:\n${output}`)), 60_000);
    child.stdout!.on("data", (chunk) => {
      output += chunk;
      if (output.includes("worker started")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on("data", (chunk) => (output += chunk));
  });
}

it(
  "resumes a run after its worker is killed mid-step, and never runs a succeeded step again",
  async () => {
    const { key } = await t.createProject();
    const base = `http://127.0.0.1:${port}`;
    const published = await t.graphql(
      `mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`,
      {
        d: `apiVersion: tessera/v1
kind: Workflow
slug: durable
steps:
  - id: first
    uses: http
    with: { url: "${base}/count/first" }
  - id: second
    uses: http
    needs: [first]
    with: { url: "${base}/hang/second" }
  - id: third
    uses: transform
    with: { seen: "\${{ steps.first.output.body.count }}-\${{ steps.second.output.body.count }}" }
outputs:
  seen: "\${{ steps.third.output.seen }}"
`,
      },
      key,
    );
    expect(published.errors).toBeUndefined();

    const first = await startWorker();
    const started = await t.graphql(`mutation { runWorkflow(slug: "durable") { id } }`, {}, key);
    const runId = started.data.runWorkflow.id;
    await eventually(async () => hits.get("second") === 1, 30_000);
    // `second` needs `first` alone: it runs in first's job, right after first's advance commits, with no job of its
    // own (issue #20). Its QUEUED row was committed before it ran; first's job, re-delivered, hands it on.
    expect(await t.app.queues.queue("workflow-step").getJob(`${runId}_second`)).toBeUndefined();
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    expect((await t.app.db.run.findUniqueOrThrow({ where: { id: runId } })).status).toBe("RUNNING");

    // A new worker finds the stalled job once its lock expires, and the run goes on from PostgreSQL.
    await startWorker();
    const run = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: runId }, include: { steps: true } });
      return row.status === "RUNNING" ? null : row;
    }, 100_000);
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output).toEqual({ seen: "1-2" });
    expect(hits.get("first")).toBe(1);
    expect(hits.get("second")).toBe(2);
    const steps = Object.fromEntries(run.steps.map((step) => [step.key, step]));
    expect(steps.first!.attempts).toBe(1);
    expect(steps.second!.status).toBe("SUCCEEDED");
  },
  180_000,
);
