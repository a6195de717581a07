import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flushTracing, startTracing, stopTracing } from "../../services/observability/tracing.ts";
import { OtlpReceiver } from "../support/otlp-receiver.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * With OTEL_EXPORTER_OTLP_ENDPOINT set, one ingest is one trace: the GraphQL
 * operation (continuing the caller's traceparent), the queue, the worker's job,
 * its stages (decode, encode, index), the model batch (size, device) and the
 * vector write, all under the same trace id. The ingested text is in no span
 * (OTEL_CAPTURE_CONTENT is off by default).
 */
describe("tracing an ingest over OTLP", () => {
  let receiver: OtlpReceiver;
  let t: TestApp;

  beforeAll(async () => {
    receiver = await OtlpReceiver.start();
    // As runProcess does before the app exists: the queues take BullMQ's telemetry when tracing is on.
    expect(await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_CAPTURE_CONTENT: false }, "test")).toBe(true);
    t = await startTestApp({ worker: true });
  });
  afterAll(async () => {
    await stopTracing().catch(() => {});
    await t?.close();
    await receiver?.close();
  });

  it("links the gateway's span and the worker's spans in one trace, without the text", async () => {
    const { key } = await t.createProject();
    const marker = `zebra-${randomBytes(6).toString("hex")}`;
    const text = `A secret note about the ${marker} crossing the river at dawn.`;
    const traceId = randomBytes(16).toString("hex");
    const response = await fetch(t.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${key}`,
        traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`,
        "x-request-id": "ingest-trace-test-1",
      },
      body: JSON.stringify({ query: `mutation IngestTraced($text: String!) { ingest(input: { text: $text }) { job { id } } }`, variables: { text } }),
    });
    expect(response.headers.get("x-request-id")).toBe("ingest-trace-test-1");
    const result = (await response.json()) as { data: { ingest: { job: { id: string } } }; errors?: unknown };
    expect(result.errors).toBeUndefined();
    const job = await eventually(async () => {
      const row = await t.app.db.job.findUnique({ where: { id: result.data.ingest.job.id } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 120_000);
    expect(job.status).toBe("SUCCEEDED");

    // The worker's spans end as its job returns, just after the row says SUCCEEDED; then everything buffered is sent.
    const names = () => new Set(receiver.spans.filter((span) => span.traceId === traceId).map((span) => span.name));
    await eventually(async () => {
      await flushTracing();
      return names().has("process ingest");
    }, 30_000).catch(() => undefined);

    const trace = receiver.spans.filter((span) => span.traceId === traceId);
    const byName = (name: string) => trace.find((span) => span.name === name);
    const operation = byName("mutation IngestTraced");
    expect(operation, `spans: ${[...names()].join(", ")}`).toBeDefined();
    expect(operation!.attributes["graphql.operation.name"]).toBe("IngestTraced");
    expect(byName("process ingest")).toBeDefined();
    for (const stage of ["ingest.decode", "ingest.encode", "ingest.index"]) expect(byName(stage), stage).toBeDefined();
    expect(byName("queue.wait ingest")).toBeDefined();
    const batch = trace.find((span) => span.name.startsWith("model.batch "));
    expect(batch?.attributes).toMatchObject({ "tessera.model.device": "cpu", "tessera.model.operation": "embedText" });
    expect(batch!.attributes["tessera.model.batch_size"]).toBeGreaterThanOrEqual(1);
    const write = byName("vector_store.upsert");
    expect(write?.attributes).toMatchObject({ "db.operation.name": "upsert" });
    expect(write!.attributes["tessera.vector.count"]).toBeGreaterThanOrEqual(1);

    // The worker's job is a descendant of the GraphQL operation's span: follow parents up from the upsert.
    const byId = new Map(trace.map((span) => [span.spanId, span]));
    let cursor: (typeof trace)[number] | undefined = write;
    const chain: string[] = [];
    while (cursor) {
      chain.push(cursor.name);
      cursor = cursor.parentSpanId ? byId.get(cursor.parentSpanId) : undefined;
    }
    expect(chain).toContain("process ingest");
    expect(chain).toContain("mutation IngestTraced");

    // BullMQ's housekeeping (stall checks every few seconds) makes no traces of its own.
    expect(receiver.spans.filter((span) => /^(startStalledCheckTimer|moveStalledJobsToWait)/.test(span.name))).toEqual([]);

    // Content stays out of spans unless OTEL_CAPTURE_CONTENT=1.
    expect(receiver.bodies.length).toBeGreaterThan(0);
    for (const body of receiver.bodies) expect(body).not.toContain(marker);
  }, 240_000);
});
