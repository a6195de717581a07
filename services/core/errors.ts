import { redactSecrets, redactSecretsIn } from "./secret-redaction.ts";

/**
 * Codes a client can act on. They travel as `code` on failed jobs and steps,
 * and the gateway sends them as `extensions.code` on GraphQL errors.
 */
export const ErrorCode = {
  UNAUTHENTICATED: "UNAUTHENTICATED",
  FORBIDDEN: "FORBIDDEN",
  NOT_FOUND: "NOT_FOUND",
  BAD_USER_INPUT: "BAD_USER_INPUT",
  UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  CORRUPT_MEDIA: "CORRUPT_MEDIA",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  URL_NOT_ALLOWED: "URL_NOT_ALLOWED",
  FETCH_FAILED: "FETCH_FAILED",
  CONFLICT: "CONFLICT",
  INVALID_WORKFLOW: "INVALID_WORKFLOW",
  MODEL_ERROR: "MODEL_ERROR",
  MODEL_NOT_FOUND: "MODEL_NOT_FOUND",
  PROVIDER_ERROR: "PROVIDER_ERROR",
  TIMEOUT: "TIMEOUT",
  /** Too many requests in a window; `details.retryAfterSeconds` says when to try again. */
  RATE_LIMITED: "RATE_LIMITED",
  /** A project's quota (concurrent runs or jobs, storage, tokens) is spent; `details.retryAfterSeconds` when known. */
  QUOTA_EXCEEDED: "QUOTA_EXCEEDED",
  /** A workflow expression passed its time, memory or result-size limit; `details` name the limit and the expression's line:col. */
  EXPRESSION_LIMIT: "EXPRESSION_LIMIT",
  /** An idempotency key already names an operation with other content (two requests raced with one key and different bytes). */
  IDEMPOTENCY_CONFLICT: "IDEMPOTENCY_CONFLICT",
  /** The worker running a job stopped (killed, out of memory, deployed over) more often than a job may survive; `details.stalls`. */
  WORKER_LOST: "WORKER_LOST",
  CANCELLED: "CANCELLED",
  /** Another MCP server could not be reached, timed out, or refused the connection (mcp.call, agent MCP tools). */
  MCP_UNREACHABLE: "MCP_UNREACHABLE",
  /** An MCP server's tool answered with an error (`isError`, or a JSON-RPC error such as an unknown tool). */
  MCP_TOOL_ERROR: "MCP_TOOL_ERROR",
  /** An MCP server broke the protocol: an answer that is no MCP, a version it cannot speak, a result too large. */
  MCP_PROTOCOL: "MCP_PROTOCOL",
  /** PERSISTED_OPERATIONS=only: the request sent a query's text (or no operation) instead of a listed operation's hash. */
  PERSISTED_OPERATION_REQUIRED: "PERSISTED_OPERATION_REQUIRED",
  /** The hash names no operation in the gateway's persisted-operations manifest. */
  PERSISTED_OPERATION_NOT_FOUND: "PERSISTED_OPERATION_NOT_FOUND",
  SERVICE_UNAVAILABLE: "SERVICE_UNAVAILABLE",
  INTERNAL: "INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * An error that is safe to show to the caller: a code, a message, optional
 * details. A plain error: the transport decides how it looks on the wire (the
 * gateway's edge turns it into a GraphQL error); the worker reads the code to
 * tell a permanent failure from one worth retrying.
 */
export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    // Shown to callers and stored on rows: no password, key or token survives into either.
    super(redactSecrets(message));
    this.name = "TesseraError";
    this.code = code;
    this.details = details && redactSecretsIn(details);
  }

  /** The shape stored on failed jobs and steps. */
  toRecord(): ErrorRecord {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export type ErrorRecord = { code: ErrorCode; message: string; details?: Record<string, unknown> };

/**
 * Turns anything thrown into a record fit to store and show. A TesseraError
 * keeps its code and message; anything else (a file path, Prisma's or a vector
 * store's own words) is INTERNAL with a safe message naming `reference` (the
 * job or step the logs file it under): the caller logs the raw error there.
 */
export function toErrorRecord(error: unknown, reference?: string): ErrorRecord {
  if (error instanceof TesseraError) return error.toRecord();
  return internalErrorRecord(reference);
}

export function internalErrorRecord(reference?: string): ErrorRecord {
  const where = reference ? `; the server's logs have the details under ${reference}` : "; the server's logs have the details";
  return { code: ErrorCode.INTERNAL, message: `an internal error stopped this${where}`, ...(reference ? { details: { reference } } : {}) };
}
