import { context, propagation, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import type { NodeSDK } from "@opentelemetry/sdk-node";
import { BullMQOtel } from "bullmq-otel";
import type { Config } from "../core/config.ts";

type TracingConfig = Pick<Config, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_EXPORTER_OTLP_PROTOCOL" | "OTEL_CAPTURE_CONTENT">;

/** Spans are named by what they do; this is the tracer (instrumentation scope) they come from. */
export const tracer = trace.getTracer("tessera");

let sdk: NodeSDK | undefined;

/** BullMQ's housekeeping, a trace of its own every few seconds per queue: no one's request, so not recorded. */
const HOUSEKEEPING = /^(startStalledCheckTimer|moveStalledJobsToWait|getNextJob|rateLimit|delay|pause|resume|close)\b/;
/** SamplingDecision of @opentelemetry/sdk-trace: NOT_RECORD 0, RECORD_AND_SAMPLED 2. */
const quietSampler = {
  shouldSample(parent: Context, _traceId: string, spanName: string) {
    const parentSpan = trace.getSpanContext(parent);
    if (parentSpan && trace.isSpanContextValid(parentSpan)) return { decision: parentSpan.traceFlags & 1 ? 2 : 0 };
    return { decision: HOUSEKEEPING.test(spanName) ? 0 : 2 };
  },
  toString: () => "TesseraQuietSampler",
};
let captureContent = false;

/**
 * Starts the OpenTelemetry SDK when OTEL_EXPORTER_OTLP_ENDPOINT is set (else
 * does nothing and every span below is a no-op): W3C trace context,
 * AsyncLocalStorage context, spans batched to `<endpoint>/v1/traces` over
 * OTLP/HTTP (protobuf, or JSON). No automatic instrumentation: Tessera's own
 * spans (GraphQL operations, jobs, stages, model batches, vector writes) are
 * the ones that say something. Returns whether tracing is on.
 */
export async function startTracing(config: TracingConfig, serviceName: string): Promise<boolean> {
  captureContent = config.OTEL_CAPTURE_CONTENT;
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT || sdk) return sdk !== undefined;
  // Loaded only when tracing is on: the SDK alone adds about a second to every process's start.
  const [{ NodeSDK }, { OTLPTraceExporter: OTLPJsonTraceExporter }, { OTLPTraceExporter: OTLPProtoTraceExporter }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
  ]);
  if (sdk) return true;
  const url = `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  const traceExporter = config.OTEL_EXPORTER_OTLP_PROTOCOL === "http/json" ? new OTLPJsonTraceExporter({ url }) : new OTLPProtoTraceExporter({ url });
  sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME || `tessera-${serviceName}`,
    traceExporter,
    // Every trace a caller starts is kept (a caller's unsampled traceparent is followed); BullMQ's housekeeping is not.
    sampler: quietSampler as unknown as NonNullable<ConstructorParameters<typeof NodeSDK>[0]>["sampler"],
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return true;
}

/** Sends the spans still buffered and stops the SDK (a process's last step). */
export async function stopTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}

/** Sends the spans ended so far (tests, and a process about to stop). */
export async function flushTracing(): Promise<void> {
  const provider = trace.getTracerProvider() as { getDelegate?(): unknown };
  const delegate = (provider.getDelegate?.() ?? provider) as { forceFlush?(): Promise<void> };
  await delegate.forceFlush?.();
}

export function tracingEnabled(): boolean {
  return sdk !== undefined;
}

/** Whether prompts, texts and media may go into spans (OTEL_CAPTURE_CONTENT=1). */
export function contentCaptured(): boolean {
  return captureContent;
}

/** What BullMQ puts on its spans that is content: a job's return value (generated text), progress and failure text. */
const QUEUE_CONTENT_ATTRIBUTES = new Set(["bullmq.job.result", "bullmq.job.progress", "bullmq.job.failed.reason"]);

function withoutContent<A extends Record<string, unknown> | undefined>(attributes: A): A {
  if (!attributes || captureContent) return attributes;
  return Object.fromEntries(Object.entries(attributes).filter(([key]) => !QUEUE_CONTENT_ATTRIBUTES.has(key))) as A;
}

/**
 * The telemetry BullMQ queues and workers take, so a job's spans continue the
 * trace that queued it (W3C context in the job's options); undefined when
 * tracing is off. BullMQ's own content attributes are dropped unless
 * OTEL_CAPTURE_CONTENT=1.
 */
export function queueTelemetry(): BullMQOtel | undefined {
  if (!sdk) return undefined;
  const telemetry = new BullMQOtel({ tracerName: "tessera-queue" });
  const tracer = telemetry.tracer;
  const startSpan = tracer.startSpan.bind(tracer);
  tracer.startSpan = (name, options, parent) => {
    const span = startSpan(name, options, parent);
    const { setAttribute, setAttributes, addEvent } = span;
    span.setAttribute = (key, value) => (captureContent || !QUEUE_CONTENT_ATTRIBUTES.has(key) ? setAttribute.call(span, key, value) : undefined);
    span.setAttributes = (attributes) => setAttributes.call(span, withoutContent(attributes));
    span.addEvent = (eventName: string, attributes?: Parameters<typeof addEvent>[1]) => addEvent.call(span, eventName, withoutContent(attributes));
    return span;
  };
  return telemetry;
}

/**
 * Runs `fn` inside a new active span: its status is the outcome, an error
 * is recorded as an exception event (its message, never content).
 */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, parent?: Context): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      markFailed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

export function markFailed(span: Span, error: unknown) {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.recordException({ name: error instanceof Error ? error.name : "Error", message });
  if (typeof code === "string") span.setAttribute("tessera.error.code", code);
}

/** Sets content attributes (prompt, text, media description) only when OTEL_CAPTURE_CONTENT=1. */
export function setContent(span: Span, attributes: Record<string, string | undefined>) {
  if (!captureContent) return;
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) span.setAttribute(key, value);
}

/** The caller's trace context from incoming headers (`traceparent`), for the work a request starts. */
export function contextFromHeaders(headers: Record<string, string | string[] | undefined>): Context {
  return propagation.extract(context.active(), headers);
}

/** The active trace id, or undefined outside any sampled span (for log lines). */
export function activeTraceId(): string | undefined {
  const spanContext = trace.getActiveSpan()?.spanContext();
  return spanContext && trace.isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}

/** As inSpan, for synchronous work (fusion, ranking). */
export function inSpanSync<T>(name: string, attributes: Attributes, fn: (span: Span) => T): T {
  return tracer.startActiveSpan(name, { attributes }, (span) => {
    try {
      return fn(span);
    } catch (error) {
      markFailed(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}
