import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerProbe } from "../../services/observability/probes.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * The gateway's /metrics after a real ingest (gateway, queue, worker, model,
 * embedded vector store): the GraphQL operation histogram, errors by code,
 * job duration by queue, model batch sizes by model and device, vector store
 * write latency and queue depths all move.
 */

/** The value of one series in Prometheus' text format, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const match = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) total += Number(match[3]);
  }
  return total;
}

describe("/metrics after a real ingest", () => {
  let t: TestApp;
  let metricsUrl: string;
  const scrape = async () => {
    const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(15_000) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/plain");
    return response.text();
  };

  beforeAll(async () => {
    t = await startTestApp({ worker: true });
    metricsUrl = new URL("/metrics", t.url).toString();
  });
  afterAll(async () => {
    await t?.close();
  });

  it("counts the operation, its job, the model batch and the vector write", async () => {
    const before = await scrape();
    const { key } = await t.createProject();
    const text = `The observatory's dome opened at dusk ${Date.now()}; the telescope turned toward the comet.`;
    const result = await t.graphql(`mutation IngestForMetrics($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text }, key);
    expect(result.errors).toBeUndefined();
    const jobId = result.data.ingest.job.id;
    const job = await eventually(async () => {
      const row = await t.app.db.job.findUnique({ where: { id: jobId } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 120_000);
    expect(job.status).toBe("SUCCEEDED");
    // An operation that fails: no key, so its field answers UNAUTHENTICATED.
    const refused = await t.graphql(`query JobsWithoutKey { job(id: "x") { id } }`);
    expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");

    const after = await eventually(async () => {
      const text = await scrape();
      // The job's duration is observed once the processor returns, just after its row says SUCCEEDED.
      return sample(text, "tessera_job_duration_seconds_count", { queue: "ingest", status: "succeeded" }) > 0 ? text : null;
    }, 30_000);
    const grew = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);

    expect(grew("tessera_graphql_operation_duration_seconds_count", { operation: "IngestForMetrics", type: "mutation" })).toBe(1);
    expect(grew("tessera_graphql_errors_total", { operation: "JobsWithoutKey", code: "UNAUTHENTICATED" })).toBe(1);
    expect(grew("tessera_job_duration_seconds_count", { queue: "ingest", status: "succeeded" })).toBe(1);
    expect(grew("tessera_job_queue_wait_seconds_count", { queue: "ingest" })).toBe(1);
    expect(grew("tessera_model_batch_size_count", { operation: "embedText", device: "cpu" })).toBeGreaterThanOrEqual(1);
    expect(grew("tessera_model_batch_size_sum", { operation: "embedText", device: "cpu" })).toBeGreaterThanOrEqual(1);
    expect(grew("tessera_model_batch_duration_seconds_count", { operation: "embedText", device: "cpu" })).toBeGreaterThanOrEqual(1);
    expect(grew("tessera_vector_store_duration_seconds_count", { store: "embedded", operation: "upsert", status: "ok" })).toBeGreaterThanOrEqual(1);
    // Queue depths are read at scrape time: the job is done, nothing waits.
    expect(after).toMatch(/^tessera_queue_jobs\{queue="ingest",state="waiting"\} 0$/m);
    expect(after).toMatch(/^tessera_queue_jobs\{queue="ingest",state="active"\} \d+$/m);
    expect(after).toContain("nodejs_eventloop_lag_seconds");
  }, 240_000);

  it("answers /metrics only with the token when METRICS_TOKEN is set", async () => {
    const options = { deps: t.app, metricsToken: "a-metrics-token-of-some-length" };
    expect((await answerProbe("GET", "/metrics", null, options))?.status).toBe(401);
    expect((await answerProbe("GET", "/metrics", "Bearer wrong-token-of-some-length", options))?.status).toBe(401);
    const allowed = await answerProbe("GET", "/metrics", "Bearer a-metrics-token-of-some-length", options);
    expect(allowed?.status).toBe(200);
    expect(allowed?.body).toContain("tessera_graphql_operation_duration_seconds");
  });
});
