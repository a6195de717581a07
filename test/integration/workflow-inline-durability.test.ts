import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server, type ServerResponse } from "node:http";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

// A `transform` finishes inside the advance that readies it, with no job of its own: the advance's commit is its
// checkpoint. This kills the worker right after that commit, before the job of the step after it reaches Redis.

const root = path.resolve(import.meta.dirname, "..", "..");
const hits = new Map<string, number>();
let held: ServerResponse | undefined;
let server: Server;
let port: number;
let t: TestApp;
const workers: ChildProcess[] = [];

/** A TCP relay to Redis that can stop passing bytes: the worker behind it hangs on its next Redis call. */
function freezableRelay(target: URL) {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on("data", (chunk) => void (frozen || to.write(chunk)));
      from.on("error", () => to.destroy());
      from.on("close", () => to.destroy());
    }
  });
  return {
    listen: () => new Promise<number>((resolve) => relay.listen(0, "127.0.0.1", () => resolve((relay.address() as AddressInfo).port))),
    freeze: () => void (frozen = true),
    close: () => {
      for (const socket of sockets) socket.destroy();
      relay.close();
    },
  };
}
const relay = freezableRelay(new URL(TEST_REDIS_URL));

beforeAll(async () => {
  server = createServer((request, response) => {
    const name = request.url!.split("/").pop()!;
    const count = (hits.get(name) ?? 0) + 1;
    hits.set(name, count);
    // The first call to a "held" URL is answered when the test says so.
    if (request.url!.startsWith("/held/") && count === 1) return void (held = response);
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name, count }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  t = await startTestApp(); // a gateway only: every advance happens in the worker processes below
});

afterAll(async () => {
  for (const worker of workers) worker.kill("SIGKILL");
  relay.close();
  server?.closeAllConnections();
  server?.close();
  await t?.close();
});

function startWorker(redisUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "services/worker/main.ts"], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: t.app.config.QUEUE_PREFIX,
      DATA_DIR: t.app.config.dataDir,
      URL_ALLOW_HOSTS: `127.0.0.1:${port}`,
      LOG_LEVEL: "info",
    },
  });
  workers.push(child);
  return new Promise((resolve, reject) => {
    let output = "";
    // Generous: a loaded machine takes long to load the worker.
    const timer = setTimeout(() => reject(new Error(`worker did not start:\n${output}`)), 150_000);
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
  "keeps a transform finished inline when its worker dies after the commit, before the next step's job is queued",
  async () => {
    const { key } = await t.createProject();
    const base = `http://127.0.0.1:${port}`;
    const published = await t.graphql(
      `mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`,
      {
        d: `apiVersion: tessera/v1
kind: Workflow
slug: inline-durable
steps:
  - id: fetch
    uses: http
    with: { url: "${base}/held/fetch" }
  - id: shape
    uses: transform
    with: { seen: "\${{ steps.fetch.output.body.count }}" }
  - id: report
    uses: http
    with: { url: "${base}/count/report-\${{ steps.shape.output.seen }}" }
outputs:
  seen: "\${{ steps.shape.output.seen }}"
  report: "\${{ steps.report.output.body.name }}"
`,
      },
      key,
    );
    expect(published.errors).toBeUndefined();

    const redis = new URL(TEST_REDIS_URL);
    redis.port = String(await relay.listen());
    const first = await startWorker(redis.href);
    const started = await t.graphql(`mutation { runWorkflow(slug: "inline-durable") { id } }`, {}, key);
    const runId = started.data.runWorkflow.id;
    await eventually(async () => held !== undefined, 60_000);

    // Redis goes quiet for the worker; then `fetch` answers, and the worker advances the run in PostgreSQL alone.
    relay.freeze();
    held!.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name: "fetch", count: 1 }));
    const committed = await eventually(async () => {
      const steps = await t.app.db.stepRun.findMany({ where: { runId } });
      const byKey = Object.fromEntries(steps.map((step) => [step.key, step]));
      return byKey.shape?.status === "SUCCEEDED" && byKey.report?.status === "QUEUED" ? byKey : null;
    }, 60_000);
    // Its commit holds the transform's whole attempt: input, output, one attempt, start and end.
    expect(committed.shape).toMatchObject({ status: "SUCCEEDED", input: { seen: 1 }, output: { seen: 1 }, attempts: 1 });
    expect(committed.shape!.startedAt).toBeInstanceOf(Date);
    expect(committed.shape!.finishedAt).toBeInstanceOf(Date);
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    relay.close();
    expect(hits.get("report-1")).toBeUndefined();

    // A new worker takes the dead worker's job once its lock lapses; the job's step is done, so it queues `report` again.
    await startWorker(TEST_REDIS_URL);
    const run = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: runId }, include: { steps: true } });
      return row.status === "RUNNING" ? null : row;
    }, 120_000);
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output).toEqual({ seen: 1, report: "report-1" });
    expect(hits.get("fetch")).toBe(1);
    expect(hits.get("report-1")).toBe(1);
    const shape = run.steps.find((step) => step.key === "shape")!;
    // The transform was not done again: the same attempt, the same end.
    expect(shape.attempts).toBe(1);
    expect(shape.finishedAt).toEqual(committed.shape!.finishedAt);
  },
  400_000,
);
