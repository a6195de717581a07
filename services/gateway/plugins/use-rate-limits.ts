import type { IncomingMessage } from "node:http";
import { getOperationAST } from "graphql";
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

/** Settles after this turn of the event loop: its I/O callbacks, ticks and promises. */
const endOfThisTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export type RateLimitOptions = {
  /** GraphQL's path: a request there with a known key is one operation, counted against its project up front. */
  graphqlEndpoint: string;
  /**
   * The project of a request's key when that is known without waiting (the gateway's key cache), else undefined.
   * Never a lookup: the address count comes before anything that might touch the database.
   */
  knownProjectOf?(request: Request): string | undefined;
};

/**
 * Requests per second, counted in Redis across gateway processes: per client
 * address on every HTTP request before anything is read (the key is not known
 * yet), then per project on each GraphQL operation once the key has named it,
 * over HTTP and graphql-ws alike. A GraphQL request whose key the gateway
 * already holds has both counted at once, in one Redis call, and its
 * operation is not counted again. That count is waited for before the body is
 * read, unless this process last saw the address and the project well under
 * their rates (RequestRateLimits.hasRoom): then a query runs beside its count
 * (which on a busy machine takes as long as a small project's search) and its
 * result is held until the count allows it; a mutation or subscription waits
 * for it. Past a limit: RATE_LIMITED with `details.retryAfterSeconds`, and
 * over HTTP status 429 with Retry-After.
 */
export function useRateLimits(app: RateLimitHost, options: RateLimitOptions): Plugin<GatewayContext> {
  const limits = new RequestRateLimits(app);
  // HTTP requests whose project was counted with their address: one operation each (yoga's batching is off).
  const counted = new WeakSet<Request>();
  // Those whose count is still on its way: its refusal, or null once allowed.
  const answers = new WeakMap<Request, Promise<TesseraError | null>>();
  const countProject = async (projectId: string, context: GatewayContext, stop: (result: ReturnType<typeof rateLimitedResult>) => void) => {
    try {
      await limits.countProject(projectId);
    } catch (error) {
      if (!isRateLimited(error)) throw error;
      // graphql-ws operations carry the socket in their context; only HTTP has a status line.
      stop(rateLimitedResult(error, !("socket" in context && context.socket)));
    }
  };
  return {
    // Not async: a request served beside its count returns nothing here, so yoga goes on without a promise.
    onRequest({ request, url, serverContext, endResponse, fetchAPI }) {
      const address = (serverContext as { req?: IncomingMessage } | undefined)?.req?.socket.remoteAddress;
      const projectId = url.pathname === options.graphqlEndpoint ? options.knownProjectOf?.(request) : undefined;
      if (!address && !projectId) return;
      if (projectId && limits.hasRoom(address, projectId)) {
        // Well under both rates when last counted: the request goes on while it is counted, and its operation's
        // answer waits for the count (onExecute). Nothing is answered, and no mutation runs, before it is counted.
        // The count is sent once this turn of the event loop is over: by then a query has read its body and made
        // its first call out (a search: the vector store), so the count's write to Redis, and Redis waking on a
        // busy machine, overlap that wait instead of coming before it (bench/README.md, search, fifth round).
        const answer = limits.countRequest(address, projectId, endOfThisTurn()).then(
          () => null,
          (error: unknown) => {
            if (isRateLimited(error)) return error;
            throw error;
          },
        );
        answer.catch(() => {}); // a request that never executes (a parse error) does not wait for it
        answers.set(request, answer);
        counted.add(request);
        return;
      }
      return limits.countRequest(address, projectId).then(
        () => {
          if (projectId) counted.add(request);
        },
        (error: unknown) => {
          if (!isRateLimited(error)) throw error;
          endResponse(
            new fetchAPI.Response(JSON.stringify({ errors: [toGraphQLError(error).toJSON()] }), {
              status: 429,
              headers: { "content-type": "application/json; charset=utf-8", "retry-after": retryAfterOf(error) },
            }),
          );
        },
      );
    },
    // Nothing to wait for (no key, or counted with the request): no promise, so envelop goes on at once.
    onExecute({ args, executeFn, setExecuteFn, setResultAndStopExecution }) {
      const context = args.contextValue as GatewayContext;
      const answer = context.request && answers.get(context.request);
      if (answer) {
        const refuseOn = async () => {
          const refusal = await answer;
          if (refusal) setResultAndStopExecution(rateLimitedResult(refusal, true));
        };
        // A query reads only: it runs beside its count, and its result is held until the count allows it.
        if (getOperationAST(args.document, args.operationName)?.operation !== "query") return refuseOn();
        setExecuteFn(async (executeArgs) => {
          const result = Promise.resolve(executeFn(executeArgs));
          let refusal: TesseraError | null;
          try {
            refusal = await answer;
          } catch (error) {
            result.catch(() => {});
            throw error;
          }
          if (!refusal) return result;
          result.catch(() => {});
          return rateLimitedResult(refusal, true);
        });
        return;
      }
      if (context.project && !(context.request && counted.has(context.request))) return countProject(context.project.id, context, setResultAndStopExecution);
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const context = args.contextValue as GatewayContext;
      const answer = context.request && answers.get(context.request);
      if (answer) {
        return answer.then((refusal) => {
          if (refusal) setResultAndStopExecution(rateLimitedResult(refusal, true));
        });
      }
      if (context.project && !(context.request && counted.has(context.request))) return countProject(context.project.id, context, setResultAndStopExecution);
    },
  };
}
