import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metricsRegistry } from "../../services/observability/metrics.ts";
import { flushTracing, startTracing, stopTracing } from "../../services/observability/tracing.ts";
import type { FakeOpenAIServer } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { OtlpReceiver, type ReceivedSpan } from "../support/otlp-receiver.ts";
import { eventually, type TestApp } from "../support/test-app.ts";

/*
 * The spans of search (one per space queried, one for the fusion), of a
 * workflow run (the run, each step, a map's items under the map) and of a
 * generation (OpenTelemetry gen_ai attributes: model, tokens in and out), each
 * in the trace of the request that caused it, and no prompt or query text in
 * any of them.
 */
/** Attempts of one step type with one outcome observed so far (this process's registry: the worker runs in it). */
async function stepAttempts(type: string, status: string): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric("tessera_workflow_step_duration_seconds")!.get();
  return metric.values.find((value) => (value as { metricName?: string }).metricName === "tessera_workflow_step_duration_seconds_count" && value.labels.type === type && value.labels.status === status)?.value ?? 0;
}

async function runsEnded(status: string): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric("tessera_workflow_runs_ended_total")!.get();
  return metric.values.find((value) => value.labels.status === status)?.value ?? 0;
}

describe("search, workflow and generation spans", () => {
  let receiver: OtlpReceiver;
  let fake: FakeOpenAIServer;
  let t: TestApp;
  let key: string;
  let harness: FakeProviderApp;

  beforeAll(async () => {
    receiver = await OtlpReceiver.start();
    await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_CAPTURE_CONTENT: false }, "test");
    harness = await startFakeProviderApp({
      models: { "llm.default": { provider: "fake", model: "tiny-chat", retries: 0, timeoutMs: 10000 } },
      apiKey: "sk-spans-test-secret-1234",
      app: { worker: true },
    });
    ({ t, fake } = harness);
    ({ key } = await t.createProject());
  });
  afterAll(async () => {
    await stopTracing().catch(() => {});
    await harness?.close();
    await receiver?.close();
  });


  /** POSTs a GraphQL operation under a new trace id; returns the result and the trace id. */
  async function traced(query: string, variables: Record<string, unknown>) {
    const traceId = randomBytes(16).toString("hex");
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}`, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
      body: JSON.stringify({ query, variables }),
    });
    const result = (await response.json()) as { data?: any; errors?: unknown };
    expect(result.errors).toBeUndefined();
    return { data: result.data, traceId };
  }

  /** The trace's spans once `done` holds for them (spans are sent in batches: flushed until then). */
  async function spansOf(traceId: string, done: (spans: ReceivedSpan[]) => boolean): Promise<ReceivedSpan[]> {
    return eventually(async () => {
      await flushTracing();
      const spans = receiver.spans.filter((span) => span.traceId === traceId);
      return done(spans) ? spans : null;
    }, 60_000);
  }

  it("search: a span per space queried and one for the fusion, without the query text", async () => {
    const ingested = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text: "Bees carry pollen between the orchard's apple trees." }, key);
    const jobId = ingested.data.ingest.job.id;
    await eventually(async () => (await t.app.db.job.findUnique({ where: { id: jobId } }))?.status === "SUCCEEDED", 120_000);
    const marker = `quokka${randomBytes(4).toString("hex")}`;
    const { data, traceId } = await traced(`query SearchTraced($input: SearchInput!) { search(input: $input) { hits { asset { id } } } }`, { input: { text: `insects and fruit trees ${marker}` } });
    expect(data.search.hits.length).toBeGreaterThan(0);
    const spans = await spansOf(traceId, (spans) => spans.some((span) => span.name === "search.fusion"));
    const perSpace = spans.filter((span) => span.name.startsWith("search.space "));
    expect(perSpace.length).toBeGreaterThan(0);
    for (const span of perSpace) expect(span.attributes["tessera.search.space"]).toBe(span.name.slice("search.space ".length));
    expect(spans.find((span) => span.name === "search.fusion")!.attributes["tessera.search.spaces"]).toBe(perSpace.length);
    expect(spans.some((span) => span.name === "query SearchTraced")).toBe(true);
    for (const body of receiver.bodies) expect(body).not.toContain(marker);
  }, 240_000);

  it("workflow: the run and each of its steps, a map's items in the run's trace", async () => {
    const definition = `apiVersion: tessera/v1
kind: Workflow
slug: traced-${randomBytes(3).toString("hex")}
inputs:
  items: { type: array }
steps:
  - id: each
    uses: map
    with:
      items: "\${{ inputs.items }}"
      step: { uses: transform, with: { v: "\${{ item }}" } }
  - id: sum
    uses: transform
    with: { total: "\${{ 1 + 1 }}" }
outputs:
  total: "\${{ steps.sum.output.total }}"
`;
    const published = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { slug } }`, { d: definition }, key);
    expect(published.errors).toBeUndefined();
    const before = { transform: await stepAttempts("transform", "succeeded"), map: await stepAttempts("map", "handed_over"), runs: await runsEnded("SUCCEEDED") };
    const { data, traceId } = await traced(`mutation RunTraced($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`, {
      slug: published.data.publishWorkflow.slug,
      input: { items: ["a", "b"] },
    });
    const runId = data.runWorkflow.id;
    await eventually(async () => (await t.app.db.run.findUnique({ where: { id: runId } }))?.status === "SUCCEEDED", 120_000);
    const spans = await spansOf(traceId, (spans) => spans.some((span) => span.name === "workflow.step sum") && spans.filter((span) => span.name.startsWith("workflow.step each")).length >= 3);
    expect(spans.some((span) => span.name === "workflow.run" && span.attributes["tessera.workflow.run_id"] === runId)).toBe(true);
    const sum = spans.find((span) => span.name === "workflow.step sum")!;
    expect(sum.attributes).toMatchObject({ "tessera.workflow.step": "sum", "tessera.workflow.step_type": "transform", "tessera.attempt": 1 });
    // The map step's span is an ancestor of each item's span.
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const ancestors = (span: ReceivedSpan) => {
      const names: string[] = [];
      for (let cursor = span.parentSpanId ? byId.get(span.parentSpanId) : undefined; cursor; cursor = cursor.parentSpanId ? byId.get(cursor.parentSpanId) : undefined) names.push(cursor.name);
      return names;
    };
    const items = spans.filter((span) => span.name.startsWith("workflow.step each") && span.name !== "workflow.step each");
    expect(items.length).toBe(2);
    // Each item's job was queued inside the map step's span or inside an advance of the run (whichever queued it
    // first): either way it is in the run's trace, under the operation that started the run.
    for (const item of items) {
      expect(ancestors(item)).toContain("mutation RunTraced");
      expect(ancestors(item).some((name) => name === "workflow.step each" || name === "workflow.run")).toBe(true);
    }
    expect(ancestors(sum)).toContain("mutation RunTraced");

    // The same run in the metrics: three transform attempts (two items and `sum`), the map handing over, one run ended.
    expect((await stepAttempts("transform", "succeeded")) - before.transform).toBeGreaterThanOrEqual(3);
    expect((await stepAttempts("map", "handed_over")) - before.map).toBeGreaterThanOrEqual(1);
    expect((await runsEnded("SUCCEEDED")) - before.runs).toBeGreaterThanOrEqual(1);
  }, 240_000);

  it("generation: a gen_ai span with the model and tokens in and out, without the prompt", async () => {
    const marker = `platypus${randomBytes(4).toString("hex")}`;
    fake.enqueue({ kind: "chat", content: `An answer about the ${marker}.`, usage: { prompt_tokens: 17, completion_tokens: 6 } });
    const { data, traceId } = await traced(`mutation GenerateTraced($input: GenerateInput!) { generate(input: $input) { id } }`, { input: { task: "TEXT", prompt: `Tell me about the ${marker}.` } });
    const jobId = data.generate.id;
    await eventually(async () => (await t.app.db.job.findUnique({ where: { id: jobId } }))?.status === "SUCCEEDED", 60_000);
    const spans = await spansOf(traceId, (spans) => spans.some((span) => span.name === "chat tiny-chat"));
    expect(spans.find((span) => span.name === "chat tiny-chat")!.attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "fake",
      "gen_ai.request.model": "tiny-chat",
      "gen_ai.usage.input_tokens": 17,
      "gen_ai.usage.output_tokens": 6,
    });
    // And as metrics: tokens by provider, model and direction.
    const metrics = await (await fetch(new URL("/metrics", t.url))).text();
    expect(metrics).toMatch(/^tessera_generation_tokens_total\{provider="fake",model="tiny-chat",direction="input"\} 17$/m);
    expect(metrics).toMatch(/^tessera_generation_tokens_total\{provider="fake",model="tiny-chat",direction="output"\} 6$/m);
    for (const body of receiver.bodies) expect(body).not.toContain(marker);
  }, 120_000);
});
