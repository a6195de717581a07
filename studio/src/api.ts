/**
 * The studio's only way to Tessera: the public GraphQL API at /graphql with the
 * user's API key (kept in sessionStorage). Queries and mutations over fetch,
 * uploads as GraphQL multipart requests over XMLHttpRequest (it reports upload
 * progress), subscriptions over SSE with graphql-sse.
 */
import { createClient, type Client } from "graphql-sse";

const KEY_STORAGE = "tessera.apiKey";
export const GRAPHQL_URL = "/graphql";

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}
export function storeKey(key: string | null) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  sseClient?.dispose();
  sseClient = undefined;
}

export type Problem = { line?: number; column?: number; path?: string; message: string };
type WireError = { message: string; path?: ReadonlyArray<string | number>; extensions?: { code?: string; details?: unknown } };
type Result<T> = { data?: T | null; errors?: ReadonlyArray<WireError> };

/** An error the gateway answered: its code (UNAUTHENTICATED, VALIDATION_FAILED, ...) and the problems it lists. */
export class ApiError extends Error {
  readonly code: string;
  readonly details: unknown;
  constructor(errors: ReadonlyArray<WireError>) {
    super(errors.map((e) => e.message).join("\n"));
    this.code = errors[0]?.extensions?.code ?? "ERROR";
    this.details = errors[0]?.extensions?.details;
  }
  get problems(): Problem[] {
    return (this.details as { problems?: Problem[] } | undefined)?.problems ?? [];
  }
}

function dataOf<T>(result: Result<T>, status: number): T {
  if (result.errors?.length) throw new ApiError(result.errors);
  if (!result.data) throw new Error(`the gateway answered HTTP ${status} without data`);
  return result.data;
}

export async function gql<T = any>(query: string, variables: Record<string, unknown> = {}, key = storedKey()): Promise<T> {
  const response = await fetch(GRAPHQL_URL, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const result = (await response.json().catch(() => ({}))) as Result<T>;
  return dataOf(result, response.status);
}

/**
 * One multipart request (the GraphQL multipart request spec) with one file at
 * `variables.<path>`; `onProgress` gets the fraction of bytes sent.
 */
export function gqlUpload<T = any>(
  query: string,
  variables: Record<string, unknown>,
  filePath: string,
  file: Blob,
  filename: string,
  onProgress?: (fraction: number) => void,
): Promise<T> {
  const form = new FormData();
  form.set("operations", JSON.stringify({ query, variables }));
  form.set("map", JSON.stringify({ "0": [`variables.${filePath}`] }));
  form.set("0", file, filename);
  return new Promise<T>((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", GRAPHQL_URL);
    const key = storedKey();
    if (key) request.setRequestHeader("authorization", `Bearer ${key}`);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress?.(event.loaded / event.total);
    };
    request.onload = () => {
      try {
        resolve(dataOf(JSON.parse(request.responseText) as Result<T>, request.status));
      } catch (error) {
        reject(error instanceof ApiError ? error : new Error(`upload answered HTTP ${request.status}`));
      }
    };
    request.onerror = () => reject(new Error("the gateway could not be reached"));
    request.send(form);
  });
}

let sseClient: Client | undefined;
function subscriptions(): Client {
  sseClient ??= createClient({
    url: new URL(GRAPHQL_URL, location.href).href,
    headers: (): Record<string, string> => {
      const key = storedKey();
      return key ? { authorization: `Bearer ${key}` } : {};
    },
    retryAttempts: 2,
  });
  return sseClient;
}

/** Calls `onData` with each result of the subscription until it ends; returns a function that stops it. */
export function subscribe<T>(
  query: string,
  variables: Record<string, unknown>,
  handlers: { onData: (data: T) => void; onError?: (error: Error) => void; onComplete?: () => void },
): () => void {
  return subscriptions().subscribe<T>(
    { query, variables },
    {
      next: (result) => {
        if (result.errors?.length) handlers.onError?.(new ApiError(result.errors as unknown as WireError[]));
        else if (result.data) handlers.onData(result.data as T);
      },
      error: (error) => handlers.onError?.(error instanceof Error ? error : new Error(String(error))),
      complete: () => handlers.onComplete?.(),
    },
  );
}

/** Fields that only newer gateways have (Asset.contentUrl, thumbnailUrl, text spans): asked for only when the schema knows them. */
export type Features = { contentUrl: boolean; thumbnailUrl: boolean; text: boolean };
let features: Promise<Features> | undefined;

async function hasAssetField(selection: string): Promise<boolean> {
  try {
    await gql(`query { assets(first: 1) { edges { node { id ${selection} } } } }`);
    return true;
  } catch (error) {
    // A field the schema lacks (or of another shape) fails validation; any other error means it is there.
    return !(error instanceof ApiError && /Cannot query field|selection of subfields|must not have a selection|Unknown argument/i.test(error.message));
  }
}

export function assetFeatures(): Promise<Features> {
  features ??= Promise.all([hasAssetField("contentUrl"), hasAssetField("thumbnailUrl"), hasAssetField("text(limit: 1) { kind text start end }")]).then(
    ([contentUrl, thumbnailUrl, text]) => ({ contentUrl, thumbnailUrl, text }),
  );
  return features;
}

/** The Asset fields the studio shows; `spans` is how many pieces of indexed text (OCR lines, transcript) to ask for. */
export async function assetFields(spans = 3): Promise<string> {
  const f = await assetFeatures();
  return [
    "id filename modality mimeType byteSize status tags createdAt",
    f.contentUrl ? "contentUrl" : "",
    f.thumbnailUrl ? "thumbnailUrl" : "",
    f.text ? `textSpans: text(limit: ${spans}) { kind text start end }` : "",
  ].join(" ");
}

export type TextSpan = { kind: string; text: string; start: number; end: number };

export type Asset = {
  id: string;
  filename: string | null;
  modality: "IMAGE" | "AUDIO" | "VIDEO" | "TEXT";
  mimeType: string;
  byteSize: number;
  status: "PENDING" | "PROCESSING" | "READY" | "FAILED";
  tags: string[];
  createdAt: string;
  contentUrl?: string | null;
  thumbnailUrl?: string | null;
  textSpans?: TextSpan[];
  media?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  error?: unknown;
  sha256?: string;
  source?: string;
};

export const INGEST = `mutation Ingest($file: Upload!) { ingest(input: { file: $file }) { asset { id status } job { id status } } }`;
/** Many jobs on one stream: their states now, then every change, until all have finished. */
export const JOBS_EVENTS = `subscription JobsEvents($ids: [ID!]!) { jobsEvents(ids: $ids) { jobId status progress message error { code message } } }`;
/** The most jobs one `jobsEvents` stream follows (the gateway's MAX_WATCHED_JOBS). */
export const MAX_JOBS_PER_STREAM = 100;
export const RUN_EVENTS = `subscription RunEvents($id: ID!) { runEvents(id: $id) { runId type status stepId stepKey token message output error { code message } at } }`;
