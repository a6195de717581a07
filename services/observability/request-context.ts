import { randomUUID } from "node:crypto";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { context } from "@opentelemetry/api";
import { logContext, type LogContext, type Logger } from "../core/logger.ts";
import { contextFromHeaders } from "./tracing.ts";

/** A caller's own request id is kept when it looks like one (no log injection); otherwise a new one. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers["x-request-id"];
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Wraps an HTTP handler: each request gets a request id (the caller's
 * `x-request-id`, or a new one), sent back in `x-request-id` and put on every
 * log line written while it is served; the caller's `traceparent` is
 * continued; and one access line is logged when the response ends (method,
 * path without the query, status, duration, request id, and the GraphQL
 * operation and project when there was one).
 */
export function withRequestContext(logger: Logger, handler: RequestListener): RequestListener {
  return (request: IncomingMessage, response: ServerResponse) => {
    const requestId = requestIdOf(request);
    const store: LogContext = { requestId };
    const started = performance.now();
    response.setHeader("x-request-id", requestId);
    let logged = false;
    const access = () => {
      if (logged) return;
      logged = true;
      const path = (request.url ?? "/").split("?")[0];
      // Probes and scrapes come every few seconds: their lines are debug.
      const quiet = path === "/live" || path === "/ready" || path === "/metrics" || path === "/health";
      const line = {
        access: true,
        method: request.method,
        path,
        status: response.statusCode,
        durationMs: Math.round(performance.now() - started),
        ...(store.operation ? { operation: store.operation } : {}),
        ...(store.projectId ? { projectId: store.projectId } : {}),
        ...(response.writableFinished ? {} : { aborted: true }),
      };
      logContext.run(store, () => (quiet ? logger.debug(line, "request") : logger.info(line, "request")));
    };
    response.once("finish", access);
    response.once("close", access);
    const traced = contextFromHeaders(request.headers);
    logContext.run(store, () => context.with(traced, () => handler(request, response)));
  };
}
