import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flushTracing, startTracing, stopTracing } from "../../services/observability/tracing.ts";
import { freePort } from "../support/own-redis.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * With OTEL_EXPORTER_OTLP_ENDPOINT at a real Jaeger (v1.75.0 all-in-one, built
 * by infra/observability/jaeger.sh from the Go module proxy; skipped until it
 * is built), one image ingest is one trace with the gateway's operation, the
 * queue wait, decode, each model batch and the vector write, read back through
 * Jaeger's query API; and a workflow run is one trace with a span per step.
 */
const root = path.resolve(import.meta.dirname, "..", "..");
const script = path.join(root, "infra/observability/jaeger.sh");
const binary = spawnSync(script, ["path"], { encoding: "utf8" }).stdout.trim();
const built = binary !== "" && fs.existsSync(binary);

describe.skipIf(!built)("traces in a real Jaeger", () => {
  let t: TestApp;
  let env: Record<string, string>;
  let query: string;

  beforeAll(async () => {
    const [otlpHttp, otlpGrpc, queryPort] = [await freePort(), await freePort(), await freePort()];
    env = { ...(process.env as Record<string, string>), JAEGER_OTLP_HTTP_PORT: String(otlpHttp), JAEGER_OTLP_GRPC_PORT: String(otlpGrpc), JAEGER_QUERY_PORT: String(queryPort) };
    execFileSync(script, ["start"], { env, stdio: "pipe", timeout: 120_000 });
    query = `http://127.0.0.1:${queryPort}`;
    await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpHttp}`, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", OTEL_CAPTURE_CONTENT: false }, "test");
    t = await startTestApp({ worker: true });
  }, 180_000);

  afterAll(async () => {
    await stopTracing().catch(() => {});
    await t?.close();
    if (env) execFileSync(script, ["stop"], { env, stdio: "pipe" });
  });

  async function post(operation: string, variables: Record<string, unknown>, key: string, body?: FormData) {
    const traceId = randomBytes(16).toString("hex");
    const headers: Record<string, string> = { authorization: `Bearer ${key}`, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` };
    const response = body
      ? await fetch(t.url, { method: "POST", headers: { ...headers, "graphql-require-preflight": "1" }, body })
      : await fetch(t.url, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ query: operation, variables }) });
    const result = (await response.json()) as { data?: any; errors?: unknown };
    expect(result.errors).toBeUndefined();
    return { data: result.data, traceId };
  }

  /** The span names of one trace as Jaeger's query API returns them, once `done` holds. */
  async function jaegerTrace(traceId: string, done: (names: string[]) => boolean) {
    return eventually(async () => {
      await flushTracing();
      const response = await fetch(`${query}/api/traces/${traceId}`);
      if (!response.ok) return null;
      const body = (await response.json()) as { data?: Array<{ spans: Array<{ operationName: string }> }> };
      const names = body.data?.[0]?.spans.map((span) => span.operationName) ?? [];
      return done(names) ? names : null;
    }, 60_000);
  }

  it("an image ingest is one trace: operation, queue wait, decode, model batches, vector write", async () => {
    const { key } = await t.createProject();
    const corner = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0");
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="120"><rect width="100%" height="100%" fill="white"/><rect width="1" height="1" fill="#${corner}"/><text x="20" y="75" font-family="DejaVu Sans" font-size="40" fill="black">HARBOR MAP</text></svg>`;
    const png = await sharp(Buffer.from(svg)).png().toBuffer();
    const mutation = `mutation IngestImage($input: IngestInput!) { ingest(input: $input) { job { id } } }`;
    const form = new FormData();
    form.set("operations", JSON.stringify({ query: mutation, variables: { input: { file: null } } }));
    form.set("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.set("0", new Blob([new Uint8Array(png)], { type: "image/png" }), "map.png");
    const { data, traceId } = await post(mutation, {}, key, form);
    const jobId = data.ingest.job.id;
    await eventually(async () => (await t.app.db.job.findUnique({ where: { id: jobId } }))?.status === "SUCCEEDED", 180_000);
    const names = await jaegerTrace(traceId, (names) => names.includes("vector_store.upsert") && names.includes("process ingest"));
    expect(names).toEqual(expect.arrayContaining(["mutation IngestImage", "queue.wait ingest", "process ingest", "ingest.decode", "ingest.encode", "ingest.index", "vector_store.upsert"]));
    expect(names.filter((name) => name.startsWith("model.batch ")).length).toBeGreaterThanOrEqual(1);
  }, 300_000);

  it("a workflow run is one trace with a span per step", async () => {
    const { key } = await t.createProject();
    const definition = `apiVersion: tessera/v1
kind: Workflow
slug: jaeger-${randomBytes(3).toString("hex")}
steps:
  - id: first
    uses: transform
    with: { v: 1 }
  - id: second
    uses: transform
    with: { v: "\${{ steps.first.output.v + 1 }}" }
outputs:
  v: "\${{ steps.second.output.v }}"
`;
    const published = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { slug } }`, { d: definition }, key);
    expect(published.errors).toBeUndefined();
    const { data, traceId } = await post(`mutation RunInJaeger($slug: String!) { runWorkflow(slug: $slug) { id } }`, { slug: published.data.publishWorkflow.slug }, key);
    await eventually(async () => (await t.app.db.run.findUnique({ where: { id: data.runWorkflow.id } }))?.status === "SUCCEEDED", 120_000);
    const names = await jaegerTrace(traceId, (names) => names.includes("workflow.step second"));
    expect(names).toEqual(expect.arrayContaining(["mutation RunInJaeger", "workflow.run", "workflow.step first", "workflow.step second"]));
  }, 240_000);
});
