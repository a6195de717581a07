/**
 * `npm run bench -- observability`: the cost of tracing (and of being
 * scraped) on ingest and search, in one run. The same workload runs on apps
 * built with tracing off and on, in alternating rounds:
 *
 * - ingest: BENCH_OBS_INGESTS text ingests (default 24, BENCH_OBS_CONCURRENCY
 *   at once, default 4) through GraphQL, timed until the worker (in the same
 *   process: gateway -> queue -> worker -> model -> embedded store) finishes them all;
 * - search: BENCH_OBS_SEARCHES `search(text:)` operations (default 60) over
 *   what was ingested.
 *
 * "on" exports every span over OTLP/HTTP (protobuf) to a local sink that
 * reads and drops it, and /metrics is scraped every second; "off" has no
 * tracing SDK at all. prom-client's histograms are observed in both (they are
 * not switchable), so their own cost is in both figures. BENCH_OBS_ROUNDS
 * (default 2) rounds of off/on; the best throughput of each side is compared,
 * and the median CPU time per operation (the whole process, all threads),
 * which a loaded machine disturbs far less than wall time.
 * Needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL).
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { createAppContext } from "../services/app/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import { startTracing, stopTracing } from "../services/observability/tracing.ts";
import { startWorkerPool } from "../services/worker/worker-pool.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (message: string) => process.stderr.write(`[bench observability] ${message}\n`);
const WORDS = "river lantern harbor meadow glacier orchard canyon lighthouse market violin comet forest desert bridge island garden".split(" ");

async function pool<T>(count: number, concurrency: number, run: (index: number) => Promise<T>) {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await run(next++);
  }));
}

async function round(tracing: boolean, sink: string, dataDir: string, ingests: number, searches: number, concurrency: number) {
  const config = loadConfig({ ...process.env, DATA_DIR: dataDir, QUEUE_PREFIX: `bench-${randomUUID().slice(0, 8)}`, LOG_LEVEL: "warn", OTEL_EXPORTER_OTLP_ENDPOINT: tracing ? sink : "" });
  if (tracing) await startTracing(config, "bench");
  const app = await createAppContext(config, createLogger("warn", "bench"));
  const gateway = createGateway(app);
  const { port } = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${port}/graphql`;
  // No reconciler: it would pick up rows other runs left in a shared database.
  const worker = startWorkerPool(app, { reconcile: false });
  const { key, project } = await createApiKey(app.db, `bench-observability-${randomUUID()}`);
  const scraper = tracing ? setInterval(() => void fetch(`http://127.0.0.1:${port}/metrics`).then((response) => response.text()).catch(() => {}), 1000) : undefined;
  const graphql = async (query: string, variables: Record<string, unknown>) => {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) });
    const result = (await response.json()) as { data?: any; errors?: unknown };
    if (!result.data) throw new Error(JSON.stringify(result.errors));
    return result.data;
  };
  try {
    // Warm-up: models load, the space's table exists.
    const warm = await graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text: `warm up ${randomUUID()}` });
    await waitForJobs(app, [warm.ingest.job.id]);

    const jobIds: string[] = [];
    const ingestCpu = process.cpuUsage();
    const ingestStarted = performance.now();
    await pool(ingests, concurrency, async (index) => {
      const words = Array.from({ length: 12 }, (_, k) => WORDS[(index * 7 + k * 3) % WORDS.length]).join(" ");
      const data = await graphql(`mutation BenchIngest($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text: `${words} ${randomUUID()}` });
      jobIds.push(data.ingest.job.id);
    });
    await waitForJobs(app, jobIds);
    const ingestSeconds = (performance.now() - ingestStarted) / 1000;
    const ingestCpuMs = cpuMs(process.cpuUsage(ingestCpu));

    const searchCpu = process.cpuUsage();
    const searchStarted = performance.now();
    await pool(searches, concurrency, async (index) => {
      await graphql(`query BenchSearch($input: SearchInput!) { search(input: $input) { hits { score } } }`, { input: { text: `${WORDS[index % WORDS.length]} ${WORDS[(index + 5) % WORDS.length]}`, limit: 10 } });
    });
    const searchSeconds = (performance.now() - searchStarted) / 1000;
    const searchCpuMs = cpuMs(process.cpuUsage(searchCpu));
    return { ingestsPerSec: ingests / ingestSeconds, searchesPerSec: searches / searchSeconds, cpuMsPerIngest: ingestCpuMs / ingests, cpuMsPerSearch: searchCpuMs / searches };
  } finally {
    clearInterval(scraper);
    await worker.close();
    await gateway.close();
    await app.vectorStore.deleteProject(project.id).catch(() => {});
    await app.db.project.delete({ where: { id: project.id } }).catch(() => {});
    await app.close();
    if (tracing) await stopTracing();
  }
}

/** CPU time of the whole process (all its threads: the model runtime's too), user and system, in ms. */
const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;

async function waitForJobs(app: Awaited<ReturnType<typeof createAppContext>>, ids: string[]) {
  while (true) {
    const rows = await app.db.job.findMany({ where: { id: { in: ids } }, select: { status: true } });
    if (rows.some((row) => row.status === "FAILED")) throw new Error("an ingest failed");
    if (rows.length === ids.length && rows.every((row) => row.status === "SUCCEEDED")) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export default async function observabilityBench() {
  const ingests = env("BENCH_OBS_INGESTS", 24);
  const searches = env("BENCH_OBS_SEARCHES", 60);
  const concurrency = env("BENCH_OBS_CONCURRENCY", 4);
  const rounds = env("BENCH_OBS_ROUNDS", 2);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-obs-"));
  // An OTLP/HTTP endpoint that reads every export and drops it.
  let exports = 0;
  const sink = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      exports++;
      response.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
  const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
  await applyMigrations(loadConfig().DATABASE_URL);
  type Result = { ingestsPerSec: number; searchesPerSec: number; cpuMsPerIngest: number; cpuMsPerSearch: number };
  const results: Record<"off" | "on", Result[]> = { off: [], on: [] };
  try {
    for (let index = 0; index < rounds; index++) {
      for (const side of ["off", "on"] as const) {
        const result = await round(side === "on", sinkUrl, path.join(scratch, `${side}-${index}`), ingests, searches, concurrency);
        log(`round ${index + 1} tracing ${side}: ${result.ingestsPerSec.toFixed(2)} ingests/s (${result.cpuMsPerIngest.toFixed(1)} CPU ms each), ${result.searchesPerSec.toFixed(1)} searches/s (${result.cpuMsPerSearch.toFixed(1)} CPU ms each)`);
        results[side].push(result);
      }
    }
  } finally {
    sink.close();
    await fs.rm(scratch, { recursive: true, force: true });
  }
  const best = (side: "off" | "on", key: "ingestsPerSec" | "searchesPerSec") => Math.max(...results[side].map((result) => result[key]));
  const overhead = (key: "ingestsPerSec" | "searchesPerSec") => 1 - best("on", key) / best("off", key);
  // CPU per operation moves far less than wall time on a shared machine: the median of each side is compared.
  const median = (side: "off" | "on", key: "cpuMsPerIngest" | "cpuMsPerSearch") => {
    const values = results[side].map((result) => result[key]).sort((a, b) => a - b);
    return values[Math.floor(values.length / 2)]!;
  };
  const cpuOverhead = (key: "cpuMsPerIngest" | "cpuMsPerSearch") => median("on", key) / median("off", key) - 1;
  console.log(
    JSON.stringify({
      bench: "observability",
      ingests,
      searches,
      concurrency,
      rounds,
      offIngestsPerSec: Number(best("off", "ingestsPerSec").toFixed(2)),
      onIngestsPerSec: Number(best("on", "ingestsPerSec").toFixed(2)),
      ingestOverhead: Number(overhead("ingestsPerSec").toFixed(3)),
      offSearchesPerSec: Number(best("off", "searchesPerSec").toFixed(1)),
      onSearchesPerSec: Number(best("on", "searchesPerSec").toFixed(1)),
      searchOverhead: Number(overhead("searchesPerSec").toFixed(3)),
      offCpuMsPerIngest: Number(median("off", "cpuMsPerIngest").toFixed(1)),
      onCpuMsPerIngest: Number(median("on", "cpuMsPerIngest").toFixed(1)),
      ingestCpuOverhead: Number(cpuOverhead("cpuMsPerIngest").toFixed(3)),
      offCpuMsPerSearch: Number(median("off", "cpuMsPerSearch").toFixed(1)),
      onCpuMsPerSearch: Number(median("on", "cpuMsPerSearch").toFixed(1)),
      searchCpuOverhead: Number(cpuOverhead("cpuMsPerSearch").toFixed(3)),
      otlpExports: exports,
    }),
  );
}
