/**
 * `npm run bench -- scale`: ingest throughput of small texts (a CPU-light workload: chunk, a small sentence encoder,
 * one Weaviate write each) with 1, 2 and 4 worker processes behind one gateway, in one run. The same number of texts
 * per round, each round with a queue prefix of its own; the figure is texts/s from the first request until every
 * job has SUCCEEDED, after a warm-up round that loads each worker's encoder.
 *
 * BENCH_SCALE_WORKERS (default "1,2,4"), BENCH_SCALE_TEXTS (default 200) per round, BENCH_SCALE_CONCURRENCY (default 16)
 * requests at once, WORKER_CONCURRENCY jobs per worker (default 4). Needs PostgreSQL, Redis and a Weaviate
 * (WEAVIATE_URL, default the local one at http://127.0.0.1:8080: `npm run weaviate:start`; the embedded store is one
 * process's only).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createAppContext } from "../services/app/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import { queueNames } from "../services/queue/job-payloads.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (message: string) => process.stderr.write(`[bench scale] ${message}\n`);
const ROOT = path.resolve(import.meta.dirname, "..");
const MUTATION = `mutation ($input: IngestInput!) { ingest(input: $input) { job { id } } }`;
const WORDS = "river mountain bread violin harbour lantern meadow copper orchard glacier thunder compass letter garden".split(" ");

function text(index: number) {
  const words = Array.from({ length: 16 }, (_, at) => WORDS[(index * 7 + at * 3 + Math.floor(Math.random() * 5)) % WORDS.length]);
  return `Note ${index} ${randomUUID().slice(0, 8)}: ${words.join(" ")}.`;
}

async function startWorker(envVars: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "services/worker/main.ts"], { cwd: ROOT, env: envVars, stdio: ["ignore", "ignore", "inherit"] });
  return child;
}

async function stopWorker(child: ChildProcess) {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await once(child, "exit");
  clearTimeout(timer);
}

export default async function scaleBench() {
  const rounds = (process.env.BENCH_SCALE_WORKERS ?? "1,2,4").split(",").map(Number);
  const count = env("BENCH_SCALE_TEXTS", 200);
  const concurrency = env("BENCH_SCALE_CONCURRENCY", 16);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-scale-"));
  const base = {
    ...process.env,
    DATA_DIR: scratch,
    LOG_LEVEL: "warn",
    WEAVIATE_URL: process.env.WEAVIATE_URL ?? "http://127.0.0.1:8080",
    WEAVIATE_COLLECTION: process.env.WEAVIATE_COLLECTION ?? "TesseraBenchScale",
    // One project sends every text: the per-project limits are not what is measured.
    RATE_LIMIT_PROJECT_PER_SECOND: "0",
    RATE_LIMIT_ADDRESS_PER_SECOND: "0",
    RECONCILE_INTERVAL_MS: "0",
  };
  const results: { workers: number; seconds: number; textsPerSec: number }[] = [];
  await applyMigrations(loadConfig(base).DATABASE_URL);

  for (const workers of rounds) {
    const roundEnv = { ...base, QUEUE_PREFIX: `bench-scale-${randomUUID().slice(0, 8)}` };
    const config = loadConfig(roundEnv);
    const app = await createAppContext(config, createLogger("warn", "bench"));
    const gateway = createGateway(app);
    const { port } = await gateway.listen(0, "127.0.0.1");
    const url = `http://127.0.0.1:${port}/graphql`;
    const { key, project } = await createApiKey(app.db, `bench-scale-${randomUUID()}`);
    const children = await Promise.all(Array.from({ length: workers }, () => startWorker(roundEnv)));

    const ingestAll = async (texts: string[]) => {
      const ids: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < texts.length) {
            const body = JSON.stringify({ query: MUTATION, variables: { input: { text: texts[next++] } } });
            const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body });
            const result = (await response.json()) as { data?: { ingest: { job: { id: string } } }; errors?: unknown };
            if (!result.data) throw new Error(`ingest failed: ${JSON.stringify(result.errors)}`);
            ids.push(result.data.ingest.job.id);
          }
        }),
      );
      while (true) {
        const [done, failed] = await Promise.all([
          app.db.job.count({ where: { id: { in: ids }, status: "SUCCEEDED" } }),
          app.db.job.count({ where: { id: { in: ids }, status: "FAILED" } }),
        ]);
        if (failed > 0) throw new Error(`${failed} ingest jobs failed`);
        if (done === ids.length) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    try {
      // Warm-up: every worker starts, loads its encoder and opens its connections (jobs spread over the workers).
      log(`${workers} worker(s): warming up`);
      await ingestAll(Array.from({ length: 8 * workers }, (_, index) => text(-1 - index)));
      const texts = Array.from({ length: count }, (_, index) => text(index));
      const started = performance.now();
      await ingestAll(texts);
      const seconds = (performance.now() - started) / 1000;
      results.push({ workers, seconds: Number(seconds.toFixed(2)), textsPerSec: Number((count / seconds).toFixed(2)) });
      log(`${workers} worker(s): ${count} texts in ${seconds.toFixed(1)} s, ${(count / seconds).toFixed(1)} texts/s (load average ${os.loadavg()[0]!.toFixed(1)})`);
    } finally {
      await Promise.all(children.map(stopWorker));
      await gateway.close();
      await Promise.all(queueNames.map((name) => app.queues.queue(name).obliterate({ force: true }).catch(() => {})));
      await app.vectorStore.deleteProject(project.id).catch(() => {});
      await app.close();
    }
  }
  await fs.rm(scratch, { recursive: true, force: true });

  const one = results.find((round) => round.workers === 1)?.textsPerSec;
  const line = {
    bench: "scale",
    texts: count,
    concurrency,
    workerConcurrency: Number(process.env.WORKER_CONCURRENCY ?? 4),
    cores: os.cpus().length,
    loadAverage: Number(os.loadavg()[0]!.toFixed(1)),
    ...Object.fromEntries(results.map((round) => [`workers${round.workers}TextsPerSec`, round.textsPerSec])),
    ...(one ? Object.fromEntries(results.filter((round) => round.workers !== 1).map((round) => [`speedup${round.workers}`, Number((round.textsPerSec / one).toFixed(2))])) : {}),
  };
  console.log(JSON.stringify(line));
}
