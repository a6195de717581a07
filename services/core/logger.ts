import { AsyncLocalStorage } from "node:async_hooks";
import { trace } from "@opentelemetry/api";
import { pino, stdSerializers, type DestinationStream, type Logger } from "pino";
import { redactSecrets, redactSecretsIn } from "./secret-redaction.ts";

export type { Logger };

/**
 * What every log line written while it is set carries: the request id of the HTTP request being served.
 * The operation and project are filled in as they become known, for the request's access line.
 */
export type LogContext = { requestId?: string; operation?: string; projectId?: string };
export const logContext = new AsyncLocalStorage<LogContext>();

/** The request id of the work in progress, and its trace id when it is traced (OTEL_EXPORTER_OTLP_ENDPOINT). */
function contextFields(): Record<string, string> {
  const fields: Record<string, string> = {};
  const requestId = logContext.getStore()?.requestId;
  if (requestId) fields.requestId = requestId;
  const span = trace.getActiveSpan()?.spanContext();
  if (span && trace.isSpanContextValid(span)) fields.traceId = span.traceId;
  return fields;
}

/** An error as pino writes it (type, message, stack, cause), with its text scrubbed of secrets. */
function serializeError(error: unknown) {
  if (!(error instanceof Error)) return redactSecretsIn(error);
  // pino's serialized error is not a plain object: copy it into one, so every string in it is scrubbed.
  return redactSecretsIn(JSON.parse(JSON.stringify(stdSerializers.err(error))) as Record<string, unknown>);
}

/**
 * Structured JSON logs with no secret in them: authorization headers, API
 * keys, passwords and other secret-named fields are redacted at any depth,
 * and every message and error text is scrubbed of URL passwords, bearer
 * tokens and the secret values the process was given (secret-redaction.ts).
 * The raw text of internal errors belongs here, under the job, step or
 * request it happened in, and nowhere a caller can read it.
 */
/**
 * Where a process's log lines go: JSON on stdout, or for a person at a terminal (`LOG_FORMAT=pretty`, or `auto`
 * with stdout a TTY) pino-pretty's readable lines, formatted on pino's transport thread, not the event loop.
 */
export function logDestination(format: "auto" | "json" | "pretty"): DestinationStream | undefined {
  const pretty = format === "pretty" || (format === "auto" && process.stdout.isTTY === true);
  return pretty ? pino.transport({ target: "pino-pretty", options: { colorize: process.stdout.isTTY === true, translateTime: "SYS:HH:MM:ss.l" } }) : undefined;
}

export function createLogger(level: string, name = "tessera", destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    redact: {
      paths: ["req.headers.authorization", "req.headers.cookie", "*.apiKey", "*.authorization", "apiKey", "headers.authorization"],
      censor: "[redacted]",
    },
    serializers: { err: serializeError, error: serializeError },
    mixin: contextFields,
    formatters: { log: (object: Record<string, unknown>) => redactSecretsIn(object) },
    hooks: {
      logMethod(this: Logger, args: Parameters<Logger["info"]>, method: (...args: unknown[]) => void) {
        method.apply(this, args.map((arg) => (typeof arg === "string" ? redactSecrets(arg) : arg)));
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
