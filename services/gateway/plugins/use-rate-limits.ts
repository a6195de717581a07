import type { IncomingMessage } from "node:http";
import type { Plugin } from "graphql-yoga";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { RequestRateLimits, type RateLimitHost } from "../../limits/request-rate-limits.ts";
import type { GatewayContext } from "../context.ts";
import { toGraphQLError } from "../graphql-errors.ts";

function isRateLimited(error: unknown): error is TesseraError {
  return error instanceof TesseraError && error.code === ErrorCode.RATE_LIMITED;
}

function retryAfterOf(error: TesseraError): string {
  return String(error.details?.retryAfterSeconds ?? 1);
}

/** RATE_LIMITED in wire form, with HTTP 429 and Retry-After (yoga reads `extensions.http` and leaves it off the body). */
function rateLimitedResult(error: TesseraError, overHttp: boolean) {
  const wire = toGraphQLError(error);
  if (overHttp) Object.assign(wire.extensions, { http: { status: 429, headers: { "Retry-After": retryAfterOf(error) } } });
  return { errors: [wire] };
}

/**
 * Requests per second, counted in Redis across gateway processes: per client
 * address on every HTTP request before anything is read (the key is not known
 * yet), then per project on each GraphQL operation once the key has named it,
 * over HTTP and graphql-ws alike. Past a limit: RATE_LIMITED with
 * `details.retryAfterSeconds`, and over HTTP status 429 with Retry-After.
 */
export function useRateLimits(app: RateLimitHost): Plugin<GatewayContext> {
  const limits = new RequestRateLimits(app);
  const countProject = async (context: GatewayContext, stop: (result: ReturnType<typeof rateLimitedResult>) => void) => {
    if (!context.project) return;
    try {
      await limits.countProject(context.project.id);
    } catch (error) {
      if (!isRateLimited(error)) throw error;
      // graphql-ws operations carry the socket in their context; only HTTP has a status line.
      stop(rateLimitedResult(error, !("socket" in context && context.socket)));
    }
  };
  return {
    async onRequest({ serverContext, endResponse, fetchAPI }) {
      const request = (serverContext as { req?: IncomingMessage } | undefined)?.req;
      const address = request?.socket.remoteAddress;
      if (!address) return;
      try {
        await limits.countAddress(address);
      } catch (error) {
        if (!isRateLimited(error)) throw error;
        const refusal = error;
        endResponse(
          new fetchAPI.Response(JSON.stringify({ errors: [toGraphQLError(refusal).toJSON()] }), {
            status: 429,
            headers: { "content-type": "application/json; charset=utf-8", "retry-after": retryAfterOf(refusal) },
          }),
        );
      }
    },
    async onExecute({ args, setResultAndStopExecution }) {
      await countProject(args.contextValue as GatewayContext, setResultAndStopExecution);
    },
    async onSubscribe({ args, setResultAndStopExecution }) {
      await countProject(args.contextValue as GatewayContext, setResultAndStopExecution);
    },
  };
}
