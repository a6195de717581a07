import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProbeServer } from "../../services/observability/probes.ts";
import { freePort } from "../support/own-redis.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * A real Prometheus (Debian's package: `apt-get install prometheus`) scrapes
 * the gateway and a worker's port with infra/observability's configuration and
 * alert rules, and the PromQL queries in README's Observability section and in
 * the Grafana dashboard answer after an ingest. Skipped where the package is
 * not installed.
 */
const root = path.resolve(import.meta.dirname, "..", "..");
const hasPrometheus = spawnSync("prometheus", ["--version"]).status === 0;

/** The README's ```promql block: one query per line (indented lines continue it), comments dropped. */
async function readmeQueries(): Promise<string[]> {
  const readme = await fs.readFile(path.join(root, "README.md"), "utf8");
  const block = readme.match(/## Observability[\s\S]*?```promql\n([\s\S]*?)```/)?.[1] ?? "";
  const queries: string[] = [];
  for (const line of block.split("\n")) {
    const text = line.replace(/\s+#.*$/, "").trimEnd();
    if (!text.trim()) continue;
    if (/^\s/.test(text) && queries.length) queries[queries.length - 1] += ` ${text.trim()}`;
    else queries.push(text.trim());
  }
  return queries;
}

// CI installs Debian's prometheus (infra/setup-local.sh): there a missing binary is a failure, not a silent skip.
if (!hasPrometheus && process.env.CI) throw new Error("no prometheus binary, and CI must run this test: run infra/setup-local.sh (it installs prometheus)");

describe.skipIf(!hasPrometheus)("Prometheus scrapes the gateway and a worker", () => {
  let t: TestApp;
  let worker: Awaited<ReturnType<typeof startProbeServer>>;
  let prometheus: ChildProcess | undefined;
  let scratch: string;
  let api: string;

  async function query(expr: string): Promise<{ status: string; data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } }> {
    const response = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(15_000) });
    return (await response.json()) as never;
  }
  // Undefined until a number is there, also while a loaded machine keeps Prometheus from answering in time.
  const valueOf = async (expr: string) => {
    const answer = await query(expr).catch(() => null);
    if (!answer) return undefined;
    return answer.data?.result?.[0] ? Number(answer.data.result[0].value[1]) : undefined;
  };

  beforeAll(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-prometheus-"));
    t = await startTestApp({ worker: true });
    worker = await startProbeServer(0, "127.0.0.1", { deps: t.app });
    const gatewayPort = new URL(t.url).port;
    // infra/observability/prometheus.yml with this test's ports, scraped every two seconds: a scrape's timeout is
    // its interval, and a loaded CI machine can take more than a second to answer one.
    const committed = await fs.readFile(path.join(root, "infra/observability/prometheus.yml"), "utf8");
    const config = committed
      .replace(/scrape_interval: 15s/, "scrape_interval: 2s")
      .replace(/evaluation_interval: 15s/, "evaluation_interval: 2s")
      .replace("- alerts.yml", `- ${path.join(root, "infra/observability/alerts.yml")}`)
      .replace('"127.0.0.1:4000"', `"127.0.0.1:${gatewayPort}"`)
      .replace('"127.0.0.1:4001"', `"127.0.0.1:${worker.address.port}"`);
    expect(config).not.toBe(committed);
    await fs.writeFile(path.join(scratch, "prometheus.yml"), config);
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      "prometheus",
      [`--config.file=${path.join(scratch, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(scratch, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: "ignore" },
    );
    // Both targets scraped once before anything happens, so rates over the ingest below have a before.
    await eventually(async () => {
      const up = await query("up").catch(() => null);
      return up?.data.result.filter((series) => series.value[1] === "1").length === 2;
    }, 60_000);
  }, 120_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus!.once("exit", resolve));
      prometheus.kill("SIGTERM");
      await exited;
    }
    await worker?.close();
    await t?.close();
    if (scratch) await fs.rm(scratch, { recursive: true, force: true });
  });

  it("checks the committed configuration and rules with promtool", () => {
    execFileSync("promtool", ["check", "config", path.join(root, "infra/observability/prometheus.yml")], { stdio: "pipe" });
    execFileSync("promtool", ["check", "rules", path.join(root, "infra/observability/alerts.yml")], { stdio: "pipe" });
  });

  it("answers the README's queries and the dashboard's after an ingest", async () => {
    const { key } = await t.createProject();
    // Two ingests, each seen in a scrape: the series exist and have grown once, as the README's rate() queries expect.
    let batchesScraped = 0;
    for (const text of ["Lanterns float down the river at the autumn festival", "Geese fly south in a long wavering line"]) {
      const ingested = await t.graphql(`mutation IngestScraped($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text: `${text} ${Date.now()}.` }, key);
      expect(ingested.errors).toBeUndefined();
      const jobId = ingested.data.ingest.job.id;
      await eventually(async () => (await t.app.db.job.findUnique({ where: { id: jobId } }))?.status === "SUCCEEDED", 120_000);
      // Wait for a scrape that has this ingest's batch: the second one must be seen to grow, not just to exist.
      batchesScraped = await eventually(async () => {
        const batches = (await valueOf('sum(tessera_model_batch_size_count{operation="embedText"})')) ?? 0;
        return batches > batchesScraped ? batches : null;
      }, 120_000);
    }

    await eventually(async () => ((await valueOf('sum(tessera_job_duration_seconds_count{queue="ingest",status="succeeded"})')) ?? 0) >= 1, 60_000);
    // Queue depth: a series per served queue, read at scrape time.
    const depth = await query('sum by (queue) (tessera_queue_jobs{state="waiting"})');
    expect(depth.data.result.map((series) => series.metric.queue)).toContain("ingest");
    // Inference latency quantile over the ingest's batches, from the histogram's buckets as scraped. (The README's
    // rate() form, checked below, needs two scrapes that straddle a batch; on a loaded CI machine the scrapes came
    // far apart and it stayed NaN past any sensible wait, twice.)
    const p95 = await eventually(async () => {
      const answer = await query('histogram_quantile(0.95, sum by (le, model, device) (tessera_model_batch_duration_seconds_bucket{operation="embedText"}))').catch(() => null);
      // A series per model and device: any one that has seen a batch grow gives a number.
      const values = (answer?.data?.result ?? []).map((series) => Number(series.value[1]));
      return values.find((value) => Number.isFinite(value) && value > 0) ?? null;
    }, 120_000);
    expect(p95).toBeGreaterThan(0);
    expect(await valueOf('sum(tessera_graphql_operation_duration_seconds_count{operation="IngestScraped"})')).toBeGreaterThanOrEqual(1);

    const dashboard = JSON.parse(await fs.readFile(path.join(root, "infra/observability/grafana-dashboard.json"), "utf8")) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const queries = [...(await readmeQueries()), ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr))];
    expect(queries.length).toBeGreaterThan(10);
    for (const expr of queries) expect((await query(expr)).status, expr).toBe("success");

    const rules = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> } };
    const group = rules.data.groups.find((candidate) => candidate.name === "tessera");
    expect(group?.rules.map((rule) => rule.name)).toEqual(expect.arrayContaining(["TesseraQueueBackingUp", "TesseraWorkerDown", "TesseraEventLoopDelay"]));
  }, 420_000);
});
