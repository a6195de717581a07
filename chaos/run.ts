/**
 * `npm run chaos [-- --short] [-- --only kill9,deploys,redis,weaviate]`: faults injected into real processes on
 * this machine, then a count of what became of every accepted request. One JSON line per scenario on stdout:
 *
 *   {"scenario":"kill9","accepted":…,"finished":…,"failedWithReason":…,"lost":…,"stuck":…,"repeatedEffects":…,…}
 *
 * - a gateway and two workers (node --import tsx services/{gateway,worker}/main.ts), PostgreSQL (its own database,
 *   CHAOS_DATABASE_URL, default tessera_chaos), a Redis of its own with AOF (appendfsync everysec), the real
 *   Weaviate (infra/weaviate/weaviate.sh, started if needed) behind TCP proxies that can be taken down;
 * - load: text and image ingests and workflow runs (an http step that records its effect in a ledger, a map, a
 *   transform), accepted through the gateway's GraphQL API;
 * - lost: accepted (the gateway answered with an id) and no row any more; stuck: not finished nor failed once the
 *   scenario's settle time is over; failedWithReason: FAILED with an error code; repeatedEffects: effect requests
 *   a step made after its row had already SUCCEEDED (a finished step run again). A step interrupted by kill -9 may
 *   call its URL again before it finishes (at least once): those are `redeliveries`, not repeated effects.
 *
 * Bounded: every wait has a deadline, every process started here is killed on the way out. CHAOS_LOG_DIR: keep
 * every process's output there, one file per process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import { createServer, type Server } from "node:http";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { createApiKey } from "../services/core/api-keys.ts";
import { createDatabase } from "../services/core/database.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { makeJpegOfSize } from "../test/support/media-fixtures.ts";
import { freePort, spawnOwnRedis } from "../test/support/own-redis.ts";
import { TcpOutageProxy } from "../test/support/tcp-outage-proxy.ts";

const args = process.argv.slice(2);
const SHORT = args.includes("--short");
const ONLY = args.find((arg) => arg.startsWith("--only="))?.slice(7).split(",") ?? (args.includes("--only") ? args[args.indexOf("--only") + 1]!.split(",") : undefined);
const root = path.resolve(import.meta.dirname, "..");
const log = (message: string) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const random = (min: number, max: number) => min + Math.random() * (max - min);

/** Sizes of a round: --short fits .ci/run (a few minutes); the full round is what issue #15 asks for. */
const SIZE = SHORT
  ? { ingests: 40, images: 8, runs: 10, kills: 4, outageMs: 10_000, settleMs: 100_000 }
  : { ingests: 400, images: 100, runs: 50, kills: 50, outageMs: 60_000, settleMs: 300_000 };

const DATABASE_URL = process.env.CHAOS_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/tessera_chaos";
const WEAVIATE_HTTP_PORT = Number(process.env.CHAOS_WEAVIATE_PORT ?? 8080);
const WEAVIATE_GRPC_PORT = Number(process.env.CHAOS_WEAVIATE_GRPC_PORT ?? 50051);

const children = new Set<ChildProcess>();
let redis: ChildProcess | undefined;
let scratch = "";

function track(child: ChildProcess) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

async function killAll() {
  for (const child of [...children, ...(redis ? [redis] : [])]) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await sleep(200);
}

async function createDatabaseIfMissing() {
  const url = new URL(DATABASE_URL);
  const admin = new pg.Client({ connectionString: Object.assign(new URL(url), { pathname: "/postgres" }).toString() });
  await admin.connect();
  try {
    const name = url.pathname.slice(1);
    if ((await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 0) await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  await applyMigrations(DATABASE_URL);
}

async function startWeaviate() {
  const up = await fetch(`http://127.0.0.1:${WEAVIATE_HTTP_PORT}/v1/.well-known/ready`).then((r) => r.ok, () => false);
  if (up) return;
  log("starting Weaviate (infra/weaviate/weaviate.sh start)");
  await new Promise<void>((resolve, reject) => {
    const child = spawn("bash", ["infra/weaviate/weaviate.sh", "start"], { cwd: root, stdio: "ignore", env: { ...process.env, WEAVIATE_HTTP_PORT: String(WEAVIATE_HTTP_PORT) } });
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`weaviate.sh exited ${code}`))));
  });
}

type Env = Record<string, string>;

/** A Tessera process (node with the tsx loader: one process, so a signal reaches all of it). */
function startTessera(kind: "gateway" | "worker", env: Env, ready: string): Promise<ChildProcess> {
  return launch(kind, env, ready).ready;
}

/** The process at once, and a promise of it once `ready` was printed. */
function launch(kind: "gateway" | "worker", env: Env, ready: string): { child: ChildProcess; ready: Promise<ChildProcess> } {
  const child = track(
    spawn(process.execPath, ["--import", "tsx", `services/${kind}/main.ts`], { cwd: root, env: { ...process.env, ...env, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] }),
  );
  return { child, ready: new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`${kind} did not start within 90 s:\n${output.slice(-2000)}`)), 90_000);
    const logFile = process.env.CHAOS_LOG_DIR ? path.join(process.env.CHAOS_LOG_DIR, `${kind}-${child.pid}.log`) : undefined;
    const onData = (chunk: Buffer) => {
      if (logFile) void fs.appendFile(logFile, chunk).catch(() => {});
      output = (output + chunk.toString()).slice(-20_000);
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (!output.includes(ready)) reject(new Error(`${kind} exited (${code ?? signal}) before it was ready:\n${output.slice(-2000)}`));
    });
  }) };
}

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** Stops a process: `signal`, then SIGKILL after `graceMs` (Docker's stop: SIGTERM, 10 s, SIGKILL). */
async function stop(child: ChildProcess, signal: NodeJS.Signals, graceMs: number) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    child.kill("SIGKILL");
    await exited;
  }
}

/** The effect ledger: every call of a workflow's http step, by the run's key, with its time. */
class EffectLedger {
  readonly calls = new Map<string, number[]>();
  private server?: Server;
  port = 0;
  async start() {
    this.server = createServer((request, response) => {
      const key = decodeURIComponent(request.url!.split("/").pop()!);
      this.calls.set(key, [...(this.calls.get(key) ?? []), Date.now()]);
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ key, applied: this.calls.get(key)!.length === 1 }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server!.address() as { port: number }).port;
  }
  async close() {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

type Cluster = { gatewayUrl: string; env: Env; gateway: ChildProcess; workers: ChildProcess[] };

async function startCluster(env: Env): Promise<Cluster> {
  const port = await freePort();
  const gatewayEnv = { ...env, PORT: String(port) };
  const [gateway, ...workers] = await Promise.all([
    startTessera("gateway", gatewayEnv, "listening"),
    startTessera("worker", env, "worker started"),
    startTessera("worker", env, "worker started"),
  ]);
  return { gatewayUrl: `http://127.0.0.1:${port}/graphql`, env, gateway: gateway!, workers };
}

async function graphql(url: string, key: string, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(30_000) });
  return (await response.json()) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

async function upload(url: string, key: string, bytes: Buffer, filename: string) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query: `mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { id } job { id } } }`, variables: { file: null } }));
  form.append("map", JSON.stringify({ "0": ["variables.file"] }));
  form.append("0", new Blob([new Uint8Array(bytes)], { type: "image/jpeg" }), filename);
  const response = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${key}` }, body: form, signal: AbortSignal.timeout(30_000) });
  return (await response.json()) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

type Accepted = { jobs: string[]; runs: string[]; refused: number };

/** Sends the round's ingests and runs, a few at a time, over `spreadMs`; refused requests (gateway down, 503) are counted apart. */
async function load(cluster: Cluster, key: string, slug: string, spreadMs: number): Promise<Accepted> {
  const accepted: Accepted = { jobs: [], runs: [], refused: 0 };
  const tasks: Array<() => Promise<void>> = [];
  const tag = randomUUID().slice(0, 8);
  for (let i = 0; i < SIZE.ingests; i++)
    tasks.push(async () => {
      const text = `chaos ${tag} text ${i}: ${"the quick brown fox jumps over the lazy dog ".repeat(1 + (i % 20))}`;
      const answer = await graphql(cluster.gatewayUrl, key, `mutation ($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text });
      if (answer.data?.ingest?.job?.id) accepted.jobs.push(answer.data.ingest.job.id);
      else accepted.refused++;
    });
  for (let i = 0; i < SIZE.images; i++)
    tasks.push(async () => {
      const answer = await upload(cluster.gatewayUrl, key, await makeJpegOfSize(8_000, Math.floor(Math.random() * 1e9)), `chaos-${tag}-${i}.jpg`);
      if (answer.data?.ingest?.job?.id) accepted.jobs.push(answer.data.ingest.job.id);
      else accepted.refused++;
    });
  for (let i = 0; i < SIZE.runs; i++)
    tasks.push(async () => {
      const answer = await graphql(cluster.gatewayUrl, key, `mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`, { slug, input: { id: `${tag}-${i}` } });
      if (answer.data?.runWorkflow?.id) accepted.runs.push(answer.data.runWorkflow.id);
      else accepted.refused++;
    });
  tasks.sort(() => Math.random() - 0.5);
  const gap = spreadMs / tasks.length;
  const inFlight: Promise<void>[] = [];
  for (const task of tasks) {
    inFlight.push(task().catch(() => void accepted.refused++));
    await sleep(gap);
  }
  await Promise.all(inFlight);
  return accepted;
}

const WORKFLOW = (slug: string, ledgerPort: number) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  id: { type: string }
steps:
  - id: effect
    uses: http
    retry: { attempts: 3, backoffMs: 500 }
    with: { url: "http://127.0.0.1:${ledgerPort}/effect/\${{ inputs.id }}" }
  - id: items
    uses: map
    needs: [effect]
    with:
      items: "\${{ [1, 2, 3, 4] }}"
      concurrency: 2
      step:
        uses: transform
        with: { double: "\${{ item * 2 }}" }
  - id: sum
    uses: transform
    needs: [items]
    with: { seen: "\${{ steps.effect.output.body.key }}" }
outputs:
  seen: "\${{ steps.sum.output.seen }}"
`;

type Result = {
  scenario: string;
  accepted: number;
  finished: number;
  failedWithReason: number;
  lost: number;
  stuck: number;
  repeatedEffects: number;
  redeliveries: number;
  refused: number;
  faults: number;
  failures: Record<string, number>;
  settleSeconds: number;
};

/** Waits until every accepted job and run has ended (or the settle time is over), then counts. */
async function settle(db: ReturnType<typeof createDatabase>, scenario: string, accepted: Accepted, ledger: EffectLedger, faults: number): Promise<Result> {
  const started = Date.now();
  const deadline = started + SIZE.settleMs;
  const open = async () =>
    (await db.job.count({ where: { id: { in: accepted.jobs }, status: { in: ["QUEUED", "RUNNING"] } } })) +
    (await db.run.count({ where: { id: { in: accepted.runs }, status: { in: ["QUEUED", "RUNNING", "WAITING"] } } }));
  while (Date.now() < deadline && (await open()) > 0) await sleep(1000);
  const jobs = await db.job.findMany({ where: { id: { in: accepted.jobs } }, select: { id: true, status: true, error: true, asset: { select: { status: true } } } });
  const runs = await db.run.findMany({ where: { id: { in: accepted.runs } }, select: { id: true, status: true, error: true, input: true, steps: { where: { key: "effect" }, select: { status: true, finishedAt: true } } } });
  const failures: Record<string, number> = {};
  let failedWithReason = 0;
  for (const row of [...jobs, ...runs]) {
    if (row.status !== "FAILED") continue;
    const code = (row.error as { code?: string } | null)?.code;
    if (code) {
      failedWithReason++;
      failures[code] = (failures[code] ?? 0) + 1;
    }
  }
  let repeatedEffects = 0;
  let redeliveries = 0;
  for (const run of runs) {
    const calls = ledger.calls.get((run.input as { id: string }).id) ?? [];
    redeliveries += Math.max(0, calls.length - 1);
    const effect = run.steps[0];
    if (effect?.status === "SUCCEEDED" && effect.finishedAt) repeatedEffects += calls.filter((at) => at > effect.finishedAt!.getTime() + 50).length;
  }
  return {
    scenario,
    accepted: accepted.jobs.length + accepted.runs.length,
    finished: jobs.filter((job) => job.status === "SUCCEEDED").length + runs.filter((run) => run.status === "SUCCEEDED").length,
    failedWithReason,
    lost: accepted.jobs.length - jobs.length + (accepted.runs.length - runs.length),
    stuck: jobs.filter((job) => ["QUEUED", "RUNNING"].includes(job.status)).length + runs.filter((run) => ["QUEUED", "RUNNING", "WAITING"].includes(run.status)).length,
    repeatedEffects,
    redeliveries,
    refused: accepted.refused,
    faults,
    failures,
    settleSeconds: Math.round((Date.now() - started) / 1000),
  };
}

type Scenario = {
  name: string;
  /** Injects the faults while the load runs; returns how many were injected. */
  inject(cluster: Cluster, context: { restartRedis(): Promise<void>; weaviate: TcpOutageProxy[] }): Promise<number>;
};

async function replaceWorker(cluster: Cluster, index: number, signal: NodeJS.Signals, graceMs: number) {
  await stop(cluster.workers[index]!, signal, graceMs);
  cluster.workers[index] = await startTessera("worker", cluster.env, "worker started");
}

const SCENARIOS: Scenario[] = [
  {
    name: "kill9",
    async inject(cluster) {
      // A killed worker's replacement starts at once (it takes seconds to be ready); the next kill may hit it, starting.
      const starting: Promise<unknown>[] = [];
      for (let i = 0; i < SIZE.kills; i++) {
        await sleep(random(1000, 4000));
        const index = Math.floor(Math.random() * cluster.workers.length);
        const victim = cluster.workers[index]!;
        if (alive(victim)) {
          const exited = new Promise((resolve) => victim.once("exit", resolve));
          victim.kill("SIGKILL");
          await exited;
        }
        const replacement = launch("worker", cluster.env, "worker started");
        cluster.workers[index] = replacement.child;
        starting.push(replacement.ready.catch(() => null)); // killed while starting: replaced by that kill
      }
      await Promise.all(starting);
      for (const [index, worker] of cluster.workers.entries()) if (!alive(worker)) cluster.workers[index] = await startTessera("worker", cluster.env, "worker started");
      return SIZE.kills;
    },
  },
  {
    name: "deploys",
    async inject(cluster) {
      // Two deploys in a row: each worker gets SIGTERM, and SIGKILL 10 s later if it has not drained.
      for (let deploy = 0; deploy < 2; deploy++) {
        await sleep(random(2000, 5000));
        await Promise.all(cluster.workers.map((_worker, index) => replaceWorker(cluster, index, "SIGTERM", 10_000)));
      }
      return 2;
    },
  },
  {
    name: "redis-restart",
    async inject(_cluster, context) {
      await sleep(random(3000, 6000));
      await context.restartRedis();
      return 1;
    },
  },
  {
    name: "weaviate-outage",
    async inject(_cluster, context) {
      await sleep(random(2000, 4000));
      for (const proxy of context.weaviate) await proxy.stop();
      log(`Weaviate unreachable for ${SIZE.outageMs / 1000} s`);
      await sleep(SIZE.outageMs);
      for (const proxy of context.weaviate) await proxy.resume();
      return 1;
    },
  },
];

async function main() {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-chaos-"));
  await createDatabaseIfMissing();
  await startWeaviate();
  const weaviate = [await TcpOutageProxy.start(WEAVIATE_HTTP_PORT), await TcpOutageProxy.start(WEAVIATE_GRPC_PORT)];
  const redisPort = await freePort();
  const redisDir = path.join(scratch, "redis");
  await fs.mkdir(redisDir);
  const redisFlags = ["--dir", redisDir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction"];
  const startRedis = async () => {
    redis = spawnOwnRedis(redisPort, redisFlags);
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://127.0.0.1:${redisPort}`).then(() => true, (error: { cause?: { code?: string } }) => error.cause?.code !== "ECONNREFUSED");
      if (ok) return;
      await sleep(100);
    }
    throw new Error("Redis did not start");
  };
  await startRedis();
  const restartRedis = async () => {
    log("Redis: kill -9, restart from its append-only file");
    const old = redis!;
    old.kill("SIGKILL");
    await new Promise((resolve) => old.once("exit", resolve));
    await sleep(2000);
    await startRedis();
  };
  const ledger = new EffectLedger();
  await ledger.start();
  const env: Env = {
    NODE_ENV: "production",
    DATABASE_URL,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    QUEUE_PREFIX: `chaos-${randomUUID().slice(0, 8)}`,
    DATA_DIR: path.join(scratch, "data"),
    WEAVIATE_URL: `http://127.0.0.1:${weaviate[0]!.port}`,
    WEAVIATE_GRPC_PORT: String(weaviate[1]!.port),
    URL_ALLOW_HOSTS: `127.0.0.1:${ledger.port}`,
    WORKER_CONCURRENCY: "4",
    RECONCILE_INTERVAL_MS: "3000",
    RECONCILE_GRACE_MS: "10000",
    QUOTA_CONCURRENT_JOBS: "100000",
    QUOTA_CONCURRENT_RUNS: "100000",
  };
  const db = createDatabase(DATABASE_URL);
  const cluster = await startCluster(env);
  log(`gateway and two workers up (${cluster.gatewayUrl}), Redis :${redisPort} with AOF, Weaviate through :${weaviate[0]!.port}/:${weaviate[1]!.port}`);
  try {
    for (const scenario of SCENARIOS.filter((candidate) => !ONLY || ONLY.includes(candidate.name))) {
      const { key } = await createApiKey(db, `chaos-${scenario.name}-${randomUUID().slice(0, 6)}`);
      const slug = `chaos-${scenario.name}`;
      const published = await graphql(cluster.gatewayUrl, key, `mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`, { d: WORKFLOW(slug, ledger.port) });
      if (published.errors) throw new Error(`publish: ${JSON.stringify(published.errors)}`);
      log(`${scenario.name}: load and faults`);
      const [accepted, faults] = await Promise.all([load(cluster, key, slug, SHORT ? 15_000 : 60_000), scenario.inject(cluster, { restartRedis, weaviate })]);
      // A worker killed by the last fault is back; a proxy is back; now everything accepted must end.
      const result = await settle(db, scenario.name, accepted, ledger, faults);
      process.stdout.write(`${JSON.stringify(result)}\n`);
      if (result.lost || result.stuck || result.repeatedEffects) broken.push(scenario.name);
    }
  } finally {
    await stop(cluster.gateway, "SIGTERM", 10_000).catch(() => {});
    await Promise.all(cluster.workers.map((worker) => stop(worker, "SIGTERM", 10_000).catch(() => {})));
    await killAll();
    for (const proxy of weaviate) await proxy.stop();
    await ledger.close();
    await db.$disconnect();
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

// Bounded whatever happens: the whole round has a deadline of its own.
const limit = setTimeout(() => {
  log("chaos round over its time limit: stopping");
  void killAll().then(() => process.exit(2));
}, (SHORT ? 8 : 60) * 60_000);
limit.unref();
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void killAll().then(() => process.exit(130)));

// Scenarios that lost, stuck or repeated anything: the round fails (exit 1), so CI catches it.
const broken: string[] = [];

main()
  .then(() => {
    if (broken.length) log(`lost, stuck or repeated work in: ${broken.join(", ")}`);
    process.exit(broken.length ? 1 : 0);
  })
  .catch(async (error) => {
    log(`failed: ${error instanceof Error ? error.stack : String(error)}`);
    await killAll();
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
    process.exit(1);
  });
