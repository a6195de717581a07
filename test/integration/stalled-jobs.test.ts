import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

const root = path.resolve(import.meta.dirname, "..", "..");

// Short locks, so each stall takes seconds; the takeover bound below is derived from them.
// TEST_WORKER_LOCK_MS=10000 TEST_WORKER_STALLED_CHECK_MS=5000 measures the production defaults.
const LOCK_MS = Number(process.env.TEST_WORKER_LOCK_MS ?? 2000);
const STALLED_CHECK_MS = Number(process.env.TEST_WORKER_STALLED_CHECK_MS ?? 1000);
const MAX_STALLS = 1;
/** A dead worker's lock lapses at most LOCK_MS after its last renewal; the next stall check hands the job on. */
const TAKEOVER_BOUND_MS = LOCK_MS + STALLED_CHECK_MS + 2000; // + starting the step again (rows, HTTP) on a shared machine

// Every call to /hang/* waits forever: the worker is killed while it waits. Each call is timed.
const calls: Array<{ name: string; at: number }> = [];
let server: Server;
let port: number;
let t: TestApp;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = createServer((request) => calls.push({ name: request.url!, at: Date.now() }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  t = await startTestApp(); // a gateway only: the workers are real processes, started below
});

// No worker of one test may take the next test's jobs.
afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => (child.exitCode === null && child.signalCode === null ? kill(child) : undefined)));
});

afterAll(async () => {
  server?.closeAllConnections();
  server?.close();
  await t?.close();
});

/** A child process (node with the tsx loader, one process, so SIGKILL kills it all) that says `ready` once started. */
function startProcess(entry: string, ready: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      QUEUE_PREFIX: t.app.config.QUEUE_PREFIX,
      DATA_DIR: t.app.config.dataDir,
      URL_ALLOW_HOSTS: `127.0.0.1:${port}`,
      LOG_LEVEL: "info",
      ...env,
    },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`${entry} did not start:\n${output}`)), 60_000);
    child.stdout!.on("data", (chunk) => {
      output += chunk;
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on("data", (chunk) => (output += chunk));
  });
}

const workerSettings = { WORKER_LOCK_MS: String(LOCK_MS), WORKER_STALLED_CHECK_MS: String(STALLED_CHECK_MS), WORKER_MAX_STALLS: String(MAX_STALLS) };
const startWorker = () => startProcess("services/worker/main.ts", "worker started", workerSettings);

async function kill(child: ChildProcess): Promise<number> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  const at = Date.now();
  await exited;
  return at;
}

it(
  "hands a killed worker's step to another worker within the lock's bound, and fails it with a reason when its workers keep dying",
  async () => {
    const { key } = await t.createProject();
    const published = await t.graphql(
      `mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`,
      {
        d: `apiVersion: tessera/v1
kind: Workflow
slug: hangs
steps:
  - id: call
    uses: http
    with: { url: "http://127.0.0.1:${port}/hang/call" }
`,
      },
      key,
    );
    expect(published.errors).toBeUndefined();

    const first = await startWorker();
    const runId = (await t.graphql(`mutation { runWorkflow(slug: "hangs") { id } }`, {}, key)).data.runWorkflow.id;
    await eventually(async () => calls.length === 1, 30_000);

    // Takeover: a second worker is running when the first dies mid-step.
    const second = await startWorker();
    const killedAt = await kill(first);
    await eventually(async () => calls.length === 2, 90_000);
    const takeoverMs = calls[1]!.at - killedAt;
    console.log(`takeover after kill -9: ${takeoverMs} ms (bound ${TAKEOVER_BOUND_MS} ms)`);
    expect(takeoverMs).toBeLessThan(TAKEOVER_BOUND_MS);

    // The second death is one more than MAX_STALLS allows: BullMQ fails the job without running it; the rows say why.
    await startWorker();
    await kill(second);
    const run = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: runId }, include: { steps: true } });
      return row.status === "FAILED" ? row : null;
    }, 60_000);
    expect(calls.length).toBe(2);
    expect(run.steps[0]!.status).toBe("FAILED");
    expect(run.steps[0]!.error).toMatchObject({ code: "WORKER_LOST", message: expect.stringMatching(/the worker running it stopped 2 times/) });
  },
  240_000,
);

it(
  "marks an ingest job FAILED with a reason, and its asset FAILED, when BullMQ fails it for stalling too often",
  async () => {
    const { key } = await t.createProject();
    const ingested = await t.graphql(`mutation { ingest(input: { text: "stalls twice" }) { asset { id } job { id } } }`, {}, key);
    expect(ingested.errors).toBeUndefined();
    const { asset, job } = ingested.data.ingest;

    // Two workers in turn take the job and die with it.
    const stalling = { QUEUE: "ingest", LOCK_MS: String(LOCK_MS) };
    await kill(await startProcess("test/support/stalling-worker.ts", `took ${job.id}`, stalling));
    await kill(await startProcess("test/support/stalling-worker.ts", `took ${job.id}`, stalling));

    await startWorker();
    const row = await eventually(async () => {
      const found = await t.app.db.job.findUniqueOrThrow({ where: { id: job.id } });
      return found.status === "FAILED" ? found : null;
    }, 60_000);
    expect(row.error).toMatchObject({ code: "WORKER_LOST", message: expect.stringMatching(/the worker running it stopped 2 times/) });
    expect(row.finishedAt).not.toBeNull();
    expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).status).toBe("FAILED");
  },
  240_000,
);
