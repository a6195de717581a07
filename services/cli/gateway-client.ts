/**
 * The CLI's one way to the gateway: queries and mutations over HTTP (uploads
 * as GraphQL multipart requests), subscriptions over SSE through graphql-sse,
 * one endpoint, one API key, and errors with their codes.
 */
import { createClient, NetworkError, type Client } from "graphql-sse";

/** A problem the gateway lists in an error's details, e.g. one per line of a refused workflow file. */
export type GatewayProblem = { line?: number; column?: number; path?: string; message: string };

type WireError = { message: string; path?: ReadonlyArray<string | number>; extensions?: { code?: string; details?: unknown } };
type GraphQLResult<T> = { data?: T | null; errors?: ReadonlyArray<WireError> };

/** An error the gateway sent back: its typed code, its message, and whatever details came with it. */
export class GatewayError extends Error {
  readonly code: string;
  readonly details: unknown;
  readonly path: ReadonlyArray<string | number> | undefined;

  /** The first error is the one this stands for; the message lists all of them. */
  constructor(errors: ReadonlyArray<WireError>) {
    super(errors.map(describe).join("\n"));
    const [first] = errors;
    this.code = first?.extensions?.code ?? "ERROR";
    this.details = first?.extensions?.details;
    this.path = first?.path;
  }

  /** The problems the details list (a refused workflow file has one per line:col), if any. */
  get problems(): GatewayProblem[] {
    return (this.details as { problems?: GatewayProblem[] } | undefined)?.problems ?? [];
  }
}

/** `CODE: message`, then each listed problem on its own line as `  line:col message`. */
function describe(error: WireError): string {
  const problems = (error.extensions?.details as { problems?: GatewayProblem[] } | undefined)?.problems ?? [];
  const lines = problems.map((p) => (p.line ? `  ${p.line}:${p.column} ${p.message}` : `  ${p.path ? `${p.path}: ` : ""}${p.message}`));
  return [`${error.extensions?.code ?? "ERROR"}: ${error.message}`, ...lines].join("\n");
}

/** TESSERA_URL may name the server or its /graphql path; default http://127.0.0.1:4000/graphql. */
export function gatewayEndpoint(env = process.env): URL {
  const url = new URL(env.TESSERA_URL ?? "http://127.0.0.1:4000/graphql");
  if (!url.pathname.endsWith("/graphql")) url.pathname = `${url.pathname.replace(/\/$/, "")}/graphql`;
  return url;
}

export function apiKey(env = process.env): string {
  const key = env.TESSERA_API_KEY;
  if (!key) throw new Error("set TESSERA_API_KEY or pass --api-key (make one with `npx tessera keys create --project <name>`)");
  return key;
}

/** fetch says "fetch failed" and keeps why (ECONNREFUSED, ENOTFOUND) in its cause. */
function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { message?: string } }).cause?.message;
  return [(error as Error).message, cause].filter(Boolean).join(": ");
}

/**
 * The gateway is not there, or went away mid-request (connection refused or
 * reset, a stream cut): nothing says what became of the request, unlike a
 * GatewayError, which is the gateway's answer about it.
 */
export class GatewayUnreachableError extends Error {
  constructor(message: string, readonly reason: string) {
    super(message);
    this.name = "GatewayUnreachableError";
  }
}

function unreachable(url: URL, error: unknown): GatewayUnreachableError {
  const reason = reasonOf(error);
  return new GatewayUnreachableError(`cannot reach the gateway at ${url} (is \`npm start\` running? set TESSERA_URL or pass --url): ${reason}`, reason);
}

/** What a proxy in front of a stopped gateway answers. */
const GATEWAY_GONE_STATUS = new Set([502, 503, 504]);

/** The data of a GraphQL result, or its errors as one GatewayError. */
function dataOf<T>(result: GraphQLResult<T>): T {
  if (result.errors?.length) throw new GatewayError(result.errors);
  return result.data as T;
}

/** An HTTP answer that should hold a GraphQL result: its errors if it has them, else what went wrong. */
async function resultOf<T>(response: Response, url: URL): Promise<T> {
  const result = (await response.json().catch((error: unknown) => {
    // Not JSON is an answer; a connection reset while the body is read is the gateway going away.
    if (error instanceof SyntaxError) return null;
    throw unreachable(url, error);
  })) as GraphQLResult<T> | null;
  if (!result || (!result.errors?.length && !result.data)) {
    const message = `the gateway answered HTTP ${response.status} without a GraphQL result`;
    throw GATEWAY_GONE_STATUS.has(response.status) ? new GatewayUnreachableError(message, `HTTP ${response.status}`) : new Error(message);
  }
  return dataOf(result);
}

/** A file of a multipart request: where it goes in the variables (`variables.input.file`), and its bytes. */
export type GatewayUpload = { path: string; blob: Blob; name: string };

/**
 * One query or mutation. With `files`, it is a multipart request (the GraphQL
 * multipart request spec): each file's Blob is streamed, not read first.
 */
export async function callGateway<T>(query: string, variables: Record<string, unknown>, files: GatewayUpload[] = []): Promise<T> {
  const url = gatewayEndpoint();
  const headers: Record<string, string> = { authorization: `Bearer ${apiKey()}` };
  let body: string | FormData;
  if (files.length > 0) {
    const form = new FormData();
    form.set("operations", JSON.stringify({ query, variables }));
    form.set("map", JSON.stringify(Object.fromEntries(files.map((file, index) => [String(index), [file.path]]))));
    for (const [index, file] of files.entries()) form.set(String(index), file.blob, file.name);
    body = form;
  } else {
    headers["content-type"] = "application/json";
    body = JSON.stringify({ query, variables });
  }
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", headers, body });
  } catch (error) {
    throw unreachable(url, error);
  }
  return resultOf<T>(response, url);
}

let sseClient: Client | undefined;

/** One graphql-sse client per process, in distinct connections mode: each subscription is its own POST. */
function subscriptions(): Client {
  sseClient ??= createClient({
    url: () => gatewayEndpoint().href,
    headers: () => ({ authorization: `Bearer ${apiKey()}` }),
    // graphql-sse keeps only a failed fetch's message; keep its cause too.
    fetchFn: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init).catch((error: unknown) => Promise.reject(new Error(reasonOf(error)))),
    // A CLI says at once that the gateway is down instead of backing off for a minute.
    retryAttempts: 0,
  });
  return sseClient;
}

/**
 * A subscription's results, one `data` object each, until the gateway ends
 * the stream. Errors in a result, or a refused request, throw a GatewayError.
 */
export async function* subscribeGateway<T>(query: string, variables: Record<string, unknown>): AsyncGenerator<T> {
  const url = gatewayEndpoint();
  apiKey(); // says what to set before any connection is tried
  const results = subscriptions().iterate<T>({ query, variables });
  try {
    for await (const result of results) yield dataOf(result as GraphQLResult<T>);
  } catch (error) {
    if (error instanceof GatewayError) throw error;
    // No response, or a stream cut mid-way: nothing listens there any more.
    if (!(error instanceof NetworkError) || !error.response) throw unreachable(url, error);
    // A response that is not a stream: the gateway refused, maybe with GraphQL errors.
    throw await resultOf<T>(error.response as Response, url).then(
      () => new Error(`the gateway answered HTTP ${error.response!.status} to the subscription`),
      (refusal: Error) => refusal,
    );
  } finally {
    await results.return?.();
  }
}
