import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { ModelManifest } from "./model-manifest.ts";

export type InferenceServerOptions = {
  /** The manifest's name: every error names it. */
  model: string;
  baseUrl: string;
  apiKey?: string;
  timeoutMs: number;
  /** Tries after the first, on 408, 429, 5xx, a timeout or a refused connection. */
  retries: number;
  /** The first wait between tries; it doubles each time (a server's Retry-After wins when it says more). */
  backoffMs: number;
  logger?: Logger;
};

export type ServerReply = { status: number; headers: Headers; body: Buffer };

/** The longest a server's Retry-After may hold a call, so a batch is never parked for minutes. */
const MAX_RETRY_AFTER_MS = 30_000;

/**
 * Messages and details name the model, never the server's address (they reach API callers); the logs have it.
 *
 * HTTP to an inference server (Triton, KServe, Infinity, TEI, vLLM) for a remote encoder: every request under a
 * time limit, retried with doubling backoff while the failure may pass (429, 5xx, timeouts, refused connections),
 * and every failure a TesseraError whose code says whether trying again can help: a 4xx is the request's or the
 * manifest's fault (permanent: BAD_USER_INPUT, MODEL_NOT_FOUND, PAYLOAD_TOO_LARGE), a 5xx or 429 is MODEL_ERROR
 * and a timeout TIMEOUT (both retried by the job that called).
 */
export class InferenceServerClient {
  readonly server: string;

  constructor(private readonly options: InferenceServerOptions) {
    this.server = displayUrl(options.baseUrl);
  }

  /** The server's reply to one request, after the retries; `accept` lists non-2xx statuses that are answers, not failures. */
  async request(method: "GET" | "POST", route: string, body?: { bytes: Buffer | string; headers: Record<string, string> }, accept: number[] = []): Promise<ServerReply> {
    const url = new URL(route.replace(/^\//, ""), this.options.baseUrl.endsWith("/") ? this.options.baseUrl : `${this.options.baseUrl}/`);
    const headers: Record<string, string> = { accept: "application/json", ...(body?.headers ?? {}) };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let lastFailure: TesseraError | undefined;
    for (let attempt = 0; attempt <= this.options.retries; attempt++) {
      let waitMs = this.options.backoffMs * 2 ** attempt;
      try {
        const response = await fetch(url, {
          method,
          headers,
          body: body ? (typeof body.bytes === "string" ? body.bytes : new Uint8Array(body.bytes)) : undefined,
          signal: AbortSignal.timeout(this.options.timeoutMs),
        });
        const bytes = Buffer.from(await response.arrayBuffer());
        if (response.ok || accept.includes(response.status)) return { status: response.status, headers: response.headers, body: bytes };
        const failure = this.statusError(response.status, bytes, route, attempt + 1);
        if (!isRetryableStatus(response.status)) {
          this.options.logger?.warn({ model: this.options.model, server: this.server, route, status: response.status, reason: failure.message }, "inference server refused a call");
          throw failure;
        }
        lastFailure = failure;
        const retryAfter = retryAfterMs(response.headers);
        if (retryAfter !== undefined) waitMs = Math.max(waitMs, Math.min(retryAfter, MAX_RETRY_AFTER_MS));
      } catch (error) {
        if (error instanceof TesseraError) throw error;
        lastFailure = this.transportError(error, route, attempt + 1);
      }
      if (attempt < this.options.retries) {
        this.options.logger?.warn({ model: this.options.model, server: this.server, route, attempt: attempt + 1, waitMs, reason: lastFailure.message }, "inference server call failed; trying again");
        await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
    this.options.logger?.warn({ model: this.options.model, server: this.server, route, code: lastFailure!.code, reason: lastFailure!.message }, "inference server call failed");
    throw lastFailure!;
  }

  async json<T>(method: "GET" | "POST", route: string, payload?: unknown): Promise<T> {
    const reply = await this.request(method, route, payload === undefined ? undefined : { bytes: JSON.stringify(payload), headers: { "content-type": "application/json" } });
    return this.parseJson<T>(reply.body, route);
  }

  parseJson<T>(bytes: Buffer, route: string): T {
    try {
      return JSON.parse(bytes.toString("utf8")) as T;
    } catch {
      throw this.protocolError(`${route} answered something that is not JSON`);
    }
  }

  /** The server broke its protocol (a missing output, a wrong count): retrying the same request would not help. */
  protocolError(message: string, details: Record<string, unknown> = {}) {
    return new TesseraError(ErrorCode.MODEL_ERROR, `model ${this.options.model}: the inference server: ${message}`, {
      model: this.options.model,
      reason: "PROTOCOL",
      ...details,
    });
  }

  private statusError(status: number, body: Buffer, route: string, attempts: number): TesseraError {
    const said = serverMessage(body);
    const message = `model ${this.options.model}: the inference server answered ${status} to ${route}${said ? `: ${said}` : ""}`;
    const details = { model: this.options.model, status, attempts };
    if (isRetryableStatus(status)) return new TesseraError(ErrorCode.MODEL_ERROR, message, { ...details, retryable: true });
    if (status === 404) return new TesseraError(ErrorCode.MODEL_NOT_FOUND, message, details);
    if (status === 413) return new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, message, details);
    // 400, 401, 403, 422...: the request or the manifest (tensor names, key) is wrong; the same request fails again.
    return new TesseraError(ErrorCode.BAD_USER_INPUT, message, { ...details, retryable: false });
  }

  private transportError(error: unknown, route: string, attempts: number): TesseraError {
    const details = { model: this.options.model, attempts };
    const name = error instanceof Error ? error.name : "";
    if (name === "TimeoutError" || name === "AbortError") {
      return new TesseraError(ErrorCode.TIMEOUT, `model ${this.options.model}: the inference server did not answer ${route} within ${this.options.timeoutMs} ms`, {
        ...details,
        timeoutMs: this.options.timeoutMs,
      });
    }
    // The cause's code (ECONNREFUSED, ENOTFOUND), not its message: that names the address.
    const cause = error instanceof Error ? ((error.cause as { code?: string } | undefined)?.code ?? error.name) : "unknown";
    return new TesseraError(ErrorCode.MODEL_ERROR, `model ${this.options.model}: the inference server could not be reached (${cause})`, {
      ...details,
      reason: "UNREACHABLE",
      retryable: true,
    });
  }
}

/** The server's base URL and key, from the manifest and the environment. */
export function inferenceServerOptions(manifest: ModelManifest, logger?: Logger): InferenceServerOptions {
  const remote = manifest.remote!;
  const baseUrl = remote.url ?? process.env[remote.urlEnv!];
  if (!baseUrl) throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, `model ${manifest.name}: $${remote.urlEnv} is not set`, { model: manifest.name });
  const apiKey = remote.apiKeyEnv ? process.env[remote.apiKeyEnv] : undefined;
  if (remote.apiKeyEnv && !apiKey) logger?.warn({ model: manifest.name, variable: remote.apiKeyEnv }, "the inference server's key variable is not set: calling without a key");
  return { model: manifest.name, baseUrl, apiKey, timeoutMs: remote.timeoutMs, retries: remote.retries, backoffMs: remote.backoffMs, logger };
}

/**
 * Vectors from a server must be what the manifest promises: the space's size (a server that loaded another model
 * answers with another size, and its vectors would be compared with the wrong ones) and one per input.
 */
export function checkVectors(model: string, vectors: Float32Array[], expected: { count: number; dimensions?: number }): Float32Array[] {
  if (vectors.length !== expected.count) {
    throw new TesseraError(ErrorCode.MODEL_ERROR, `model ${model}: the inference server returned ${vectors.length} vectors for ${expected.count} inputs`, {
      model,
      reason: "PROTOCOL",
    });
  }
  const size = expected.dimensions ?? vectors[0]?.length;
  const wrong = vectors.find((vector) => vector.length !== size || vector.some((value) => !Number.isFinite(value)));
  if (wrong) {
    const finite = wrong.every((value) => Number.isFinite(value));
    throw new TesseraError(
      ErrorCode.MODEL_ERROR,
      finite
        ? `model ${model}: the inference server returned ${wrong.length}-dimensional vectors; the manifest's space takes ${size}`
        : `model ${model}: the inference server returned a vector that is not finite`,
      { model, reason: finite ? "DIMENSION_MISMATCH" : "NOT_FINITE", expected: size, got: wrong.length },
    );
  }
  return vectors;
}

/** Splits inputs into the manifest's batch size: what the server was sized for. */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += size) out.push(items.slice(start, start + size));
  return out;
}

function isRetryableStatus(status: number) {
  return status === 408 || status === 429 || status >= 500;
}

function retryAfterMs(headers: Headers): number | undefined {
  const value = headers.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

/** KServe answers `{"error": "..."}`, OpenAI-compatible servers `{"error": {"message": "..."}}`, others text. */
function serverMessage(body: Buffer): string {
  const text = body.toString("utf8").trim();
  try {
    const parsed = JSON.parse(text) as { error?: string | { message?: string }; detail?: unknown; message?: string };
    const said = typeof parsed.error === "string" ? parsed.error : (parsed.error?.message ?? parsed.message ?? (parsed.detail ? JSON.stringify(parsed.detail) : undefined));
    if (said) return said.replace(/\s+/g, " ").slice(0, 300);
  } catch {
    // not JSON: the text itself
  }
  return text.replace(/\s+/g, " ").slice(0, 300);
}

/** The URL without credentials or query, for messages and logs. */
function displayUrl(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = "";
    url.password = "";
    url.search = "";
    return url.toString().replace(/\/$/, "");
  } catch {
    return "(an invalid URL)";
  }
}
