/**
 * Tessera's typed client: queries and mutations over fetch (uploads as GraphQL
 * multipart requests, with progress), subscriptions over graphql-sse or
 * graphql-ws, one endpoint, one API key, and errors with their Tessera codes.
 *
 * Operations are the typed documents graphql-codegen generates from
 * packages/client/operations (../generated); any TypedDocumentNode works.
 * It imports nothing of services/: a browser, the studio or another program
 * can use it as it is.
 */
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print, type DocumentNode } from "graphql";
import { createClient as createSseClient, NetworkError, type Client as SseClient } from "graphql-sse";
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { JobsEventsDocument, type JobsEventsSubscription } from "../generated/graphql.ts";

/** A problem the gateway lists in an error's details, e.g. one per line of a refused workflow file. */
export type GatewayProblem = { line?: number; column?: number; path?: string; message: string };

export type WireError = { message: string; path?: ReadonlyArray<string | number>; extensions?: { code?: string; details?: unknown } };
type GraphQLResult<T> = { data?: T | null; errors?: ReadonlyArray<WireError> };

/** An error the gateway sent back: its typed code (`extensions.code`), its message, and whatever details came with it. */
export class GatewayError extends Error {
  readonly code: string;
  readonly details: unknown;
  readonly path: ReadonlyArray<string | number> | undefined;
  readonly errors: ReadonlyArray<WireError>;

  /** The first error is the one this stands for; the message lists all of them. */
  constructor(errors: ReadonlyArray<WireError>) {
    super(errors.map(describe).join("\n"));
    this.name = "GatewayError";
    const [first] = errors;
    this.errors = errors;
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

/**
 * The gateway is not there, or went away mid-request (connection refused or
 * reset, a stream cut): nothing says what became of the request, unlike a
 * GatewayError, which is the gateway's answer about it.
 */
export class GatewayUnreachableError extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
    this.name = "GatewayUnreachableError";
  }
}

/** A server, or its /graphql path; default http://127.0.0.1:4000/graphql. */
export function graphqlEndpoint(url = "http://127.0.0.1:4000/graphql"): URL {
  const endpoint = new URL(url);
  if (!endpoint.pathname.endsWith("/graphql")) endpoint.pathname = `${endpoint.pathname.replace(/\/$/, "")}/graphql`;
  return endpoint;
}

/** fetch says "fetch failed" and keeps why (ECONNREFUSED, ENOTFOUND) in its cause. */
function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { message?: string } }).cause?.message;
  return [(error as Error).message, cause].filter(Boolean).join(": ");
}

/** What a proxy in front of a stopped gateway answers. */
const GATEWAY_GONE_STATUS = new Set([502, 503, 504]);

/** A file of a multipart request: where it goes in the variables (`variables.input.file`), and its bytes. */
export type Upload = { path: string; blob: Blob; name: string };

/** Bytes of the request body handed to the network so far, of `total` (the whole multipart body). */
export type UploadProgress = { loaded: number; total: number };

export type RequestOptions = {
  /** Files of a multipart request (the GraphQL multipart request spec), each streamed, not read first. */
  files?: Upload[];
  /** Called as the body goes out (multipart requests only). */
  onUploadProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
};

export type SubscribeOptions = { transport?: "sse" | "ws" };

/** One change of a followed job (`jobsEvents`): `jobId` says whose. */
export type FollowedJobEvent = JobsEventsSubscription["jobsEvents"];

export type TesseraClientOptions = {
  /** The gateway, or its /graphql URL. */
  url?: string | URL;
  /** An API key (`tsk_...`), or a function giving it (asked at each request). */
  apiKey: string | (() => string);
  /**
   * Send registered operations (generated documents carry their hash) by hash
   * only, for a gateway with PERSISTED_OPERATIONS=only; other documents go as text.
   */
  persisted?: boolean;
  /** Say "the gateway is down" at once instead of retrying (default 0: a CLI wants that). */
  retryAttempts?: number;
  fetch?: typeof fetch;
  /** A WebSocket implementation for graphql-ws where there is no global one (Node: the ws package). */
  webSocketImpl?: unknown;
};

/** A generated document's hash (client preset's persistedDocuments: `sha256:<hex>`), if any. */
function hashOf(document: DocumentNode): string | undefined {
  const hash = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
  return hash?.replace(/^sha256:/, "");
}

const printed = new WeakMap<DocumentNode, string>();
function textOf(document: DocumentNode | string): string {
  if (typeof document === "string") return document;
  let text = printed.get(document);
  if (!text) printed.set(document, (text = print(document)));
  return text;
}

export type Variables = Record<string, unknown>;

export class TesseraClient {
  readonly endpoint: URL;
  private readonly options: TesseraClientOptions;
  private sse: SseClient | undefined;
  private ws: WsClient | undefined;

  constructor(options: TesseraClientOptions) {
    this.options = options;
    this.endpoint = graphqlEndpoint(options.url ? String(options.url) : undefined);
  }

  private key(): string {
    return typeof this.options.apiKey === "function" ? this.options.apiKey() : this.options.apiKey;
  }

  private unreachable(error: unknown): GatewayUnreachableError {
    const reason = reasonOf(error);
    return new GatewayUnreachableError(
      `cannot reach the gateway at ${this.endpoint} (is \`npm start\` running? set TESSERA_URL or pass --url): ${reason}`,
      reason,
    );
  }

  /** The JSON body of an operation: its text, or only its hash when persisted. */
  private params(document: DocumentNode | string, variables: Variables | undefined) {
    const hash = typeof document === "string" ? undefined : hashOf(document);
    if (this.options.persisted && hash) return { variables, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } };
    return { query: textOf(document), variables };
  }

  /** One query or mutation; its data, or its errors as one GatewayError. */
  async request<R, V extends Variables>(document: TypedDocumentNode<R, V> | string, variables?: V, options?: RequestOptions): Promise<R> {
    const files = options?.files ?? [];
    const headers: Record<string, string> = { authorization: `Bearer ${this.key()}` };
    const params = this.params(document as DocumentNode | string, variables as Variables | undefined);
    let body: BodyInit;
    let duplex: "half" | undefined;
    if (files.length > 0) {
      const multipart = multipartBody(params, files, options?.onUploadProgress);
      headers["content-type"] = `multipart/form-data; boundary=${multipart.boundary}`;
      headers["content-length"] = String(multipart.length);
      body = multipart.stream;
      duplex = "half";
    } else {
      headers["content-type"] = "application/json";
      body = JSON.stringify(params);
    }
    let response: Response;
    try {
      response = await (this.options.fetch ?? fetch)(this.endpoint, { method: "POST", headers, body, signal: options?.signal, ...(duplex ? { duplex } : {}) } as RequestInit);
    } catch (error) {
      if ((error as Error).name === "AbortError") throw error;
      throw this.unreachable(error);
    }
    return this.resultOf<R>(response);
  }

  /** An HTTP answer that should hold a GraphQL result: its errors if it has them, else what went wrong. */
  private async resultOf<R>(response: Response): Promise<R> {
    const result = (await response.json().catch((error: unknown) => {
      // Not JSON is an answer; a connection reset while the body is read is the gateway going away.
      if (error instanceof SyntaxError) return null;
      throw this.unreachable(error);
    })) as GraphQLResult<R> | null;
    if (!result || (!result.errors?.length && !result.data)) {
      const message = `the gateway answered HTTP ${response.status} without a GraphQL result`;
      throw GATEWAY_GONE_STATUS.has(response.status) ? new GatewayUnreachableError(message, `HTTP ${response.status}`) : new Error(message);
    }
    return dataOf(result);
  }

  /**
   * A subscription's results, one `data` object each, until the gateway ends
   * the stream. Errors in a result, or a refused request, throw a GatewayError;
   * no gateway, a GatewayUnreachableError. SSE by default; `transport: "ws"` for graphql-ws.
   */
  subscribe<R, V extends Variables>(document: TypedDocumentNode<R, V> | string, variables: V, options: SubscribeOptions = {}): AsyncGenerator<R> {
    return options.transport === "ws" ? this.subscribeWs(document, variables) : this.subscribeSse(document, variables);
  }

  /**
   * Many jobs on one stream (`jobsEvents`): each job's state now, then every change of any of them, until all
   * have finished. One connection however many jobs (at most 100 per stream: the gateway's MAX_WATCHED_JOBS);
   * a job not in the key's project throws a NOT_FOUND GatewayError before any event.
   */
  async *followJobs(ids: readonly string[], options: SubscribeOptions = {}): AsyncGenerator<FollowedJobEvent> {
    for await (const { jobsEvents } of this.subscribe(JobsEventsDocument, { ids: [...ids] }, options)) yield jobsEvents;
  }

  private async *subscribeSse<R>(document: TypedDocumentNode<R, any> | string, variables: Variables): AsyncGenerator<R> {
    this.key(); // says what to set before any connection is tried
    this.sse ??= createSseClient({
      url: () => this.endpoint.href,
      headers: () => ({ authorization: `Bearer ${this.key()}` }),
      // graphql-sse keeps only a failed fetch's message; keep its cause too.
      fetchFn: (input: RequestInfo | URL, init?: RequestInit) =>
        (this.options.fetch ?? fetch)(input, init).catch((error: unknown) => Promise.reject(new Error(reasonOf(error)))),
      retryAttempts: this.options.retryAttempts ?? 0,
    });
    const results = this.sse.iterate<R>(this.params(document as DocumentNode | string, variables) as { query: string });
    try {
      for await (const result of results) yield dataOf(result as GraphQLResult<R>);
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      // No response, or a stream cut mid-way: nothing listens there any more.
      if (!(error instanceof NetworkError) || !error.response) throw this.unreachable(error);
      // A response that is not a stream: the gateway refused, maybe with GraphQL errors.
      const response = error.response as Response;
      throw await this.resultOf<R>(response).then(
        () => new Error(`the gateway answered HTTP ${response.status} to the subscription`),
        (refusal: Error) => refusal,
      );
    } finally {
      await results.return?.();
    }
  }

  private async *subscribeWs<R>(document: TypedDocumentNode<R, any> | string, variables: Variables): AsyncGenerator<R> {
    const url = new URL(this.endpoint);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.ws ??= createWsClient({
      url: url.href,
      connectionParams: () => ({ authorization: `Bearer ${this.key()}` }),
      retryAttempts: this.options.retryAttempts ?? 0,
      lazy: true,
      ...(this.options.webSocketImpl ? { webSocketImpl: this.options.webSocketImpl } : {}),
    });
    // Persisted: an empty query and the hash in extensions (graphql-ws requires a query string).
    const params = this.params(document as DocumentNode | string, variables);
    const results = this.ws.iterate<R>({ query: params.query ?? "", variables, ...("extensions" in params ? { extensions: params.extensions } : {}) });
    try {
      for await (const result of results) yield dataOf(result as GraphQLResult<R>);
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      // graphql-ws rejects with the GraphQL errors of a refused subscription, or a CloseEvent.
      if (Array.isArray(error)) throw new GatewayError(error as WireError[]);
      const close = error as { code?: number; reason?: string };
      if (typeof close.code === "number") {
        if (close.code === 4403) throw new GatewayError([{ message: close.reason || "Forbidden", extensions: { code: "UNAUTHENTICATED" } }]);
        throw this.unreachable(new Error(`socket closed with ${close.code}${close.reason ? ` ${close.reason}` : ""}`));
      }
      throw this.unreachable(error);
    } finally {
      await results.return?.();
    }
  }

  /** Closes the subscription connections (graphql-ws's socket, graphql-sse's streams). */
  async close(): Promise<void> {
    this.sse?.dispose();
    await this.ws?.dispose();
    this.sse = undefined;
    this.ws = undefined;
  }
}

/** The data of a GraphQL result, or its errors as one GatewayError. */
function dataOf<T>(result: GraphQLResult<T>): T {
  if (result.errors?.length) throw new GatewayError(result.errors);
  return result.data as T;
}

/**
 * A multipart/form-data body for the GraphQL multipart request spec
 * (operations, map, then each file), as a stream whose length is known: the
 * files are read as the network takes them, and `onProgress` sees each chunk go.
 */
export function multipartBody(params: object, files: Upload[], onProgress?: (progress: UploadProgress) => void) {
  const boundary = `----tessera${crypto.randomUUID().replaceAll("-", "")}`;
  const encoder = new TextEncoder();
  const field = (name: string, value: string) =>
    encoder.encode(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
  const operations = { ...params, variables: { ...((params as { variables?: Variables }).variables ?? {}) } };
  const parts: Array<Uint8Array | Blob> = [
    field("operations", JSON.stringify(operations)),
    field("map", JSON.stringify(Object.fromEntries(files.map((file, index) => [String(index), [file.path]])))),
  ];
  for (const [index, file] of files.entries()) {
    const name = file.name.replace(/["\r\n\\]/g, "_");
    parts.push(
      encoder.encode(
        `--${boundary}\r\ncontent-disposition: form-data; name="${index}"; filename="${name}"\r\ncontent-type: ${file.blob.type || "application/octet-stream"}\r\n\r\n`,
      ),
      file.blob,
      encoder.encode("\r\n"),
    );
  }
  parts.push(encoder.encode(`--${boundary}--\r\n`));
  const length = parts.reduce((sum, part) => sum + (part instanceof Blob ? part.size : part.byteLength), 0);
  let loaded = 0;
  let index = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (reader) {
          const { done, value } = await reader.read();
          if (!done) {
            loaded += value.byteLength;
            controller.enqueue(value);
            onProgress?.({ loaded, total: length });
            return;
          }
          reader = undefined;
        }
        const part = parts[index++];
        if (!part) {
          controller.close();
          return;
        }
        if (part instanceof Blob) {
          reader = part.stream().getReader();
          continue;
        }
        loaded += part.byteLength;
        controller.enqueue(part);
        onProgress?.({ loaded, total: length });
        return;
      }
    },
    async cancel(reason) {
      await reader?.cancel(reason);
    },
  });
  return { boundary, length, stream };
}
