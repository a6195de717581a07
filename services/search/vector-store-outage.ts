import { ErrorCode, TesseraError } from "../core/errors.ts";

/** Socket-level codes (Node's and undici's) of a store that cannot be reached. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/**
 * What a store that is down, restarting or overloaded says, in the words of fetch, gRPC (UNAVAILABLE,
 * DEADLINE_EXCEEDED) and weaviate-client ("status code: 503", "timed out"). A 4xx is the request's fault.
 */
const UNREACHABLE_WORDS =
  /fetch failed|\bUNAVAILABLE\b|DEADLINE_EXCEEDED|timed out|socket hang up|No connection established|connection (?:refused|reset|closed|dropped)|status code: 5\d\d/i;

/** gRPC status codes: UNAVAILABLE and DEADLINE_EXCEEDED. */
const UNREACHABLE_GRPC_STATUSES = new Set([14, 4]);

/**
 * Whether an error says the vector store could not be reached (refused, reset, timed out, a 5xx,
 * gRPC UNAVAILABLE), so the same call may succeed later; a bad request says no such thing.
 * Looks through `cause` chains: fetch keeps ECONNREFUSED there.
 */
export function isVectorStoreUnreachable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === "object" && !seen.has(current)) {
    seen.add(current);
    const { code, message, errors } = current as { code?: unknown; message?: unknown; errors?: unknown };
    if (typeof code === "string" && UNREACHABLE_CODES.has(code)) return true;
    if (typeof code === "number" && UNREACHABLE_GRPC_STATUSES.has(code) && typeof (current as { path?: unknown }).path === "string") return true;
    if (typeof message === "string" && UNREACHABLE_WORDS.test(message)) return true;
    if (Array.isArray(errors) && errors.some(isVectorStoreUnreachable)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return typeof error === "string" && UNREACHABLE_WORDS.test(error);
}

export type OutageRetryOptions = {
  /** How long, in all, calls are retried while the store is unreachable; past it the call fails with SERVICE_UNAVAILABLE. */
  budgetMs: number;
  /** The longest single wait between two tries. */
  maxWaitMs: number;
  /** The first wait; each next one doubles, up to `maxWaitMs`. */
  firstWaitMs?: number;
  /** Told about each failed try before its wait (for a log line). */
  onRetry?(error: unknown, retry: { attempt: number; waitMs: number; elapsedMs: number }): void;
  /** Stops the waiting (a shutdown): the last error is thrown at once. */
  signal?: AbortSignal;
};

/**
 * Runs `operation` until it succeeds, retrying while the vector store is unreachable with
 * exponential backoff and jitter (each wait a random half to whole of 2^n × the first wait,
 * capped at `maxWaitMs`), for at most `budgetMs` in all, a try in flight included. An error that does not say "unreachable"
 * is thrown at once. An outage longer than the budget ends in a retryable SERVICE_UNAVAILABLE,
 * so the job's own attempts (and whoever re-queues it) can take it up again.
 * The operation must be safe to repeat (the vector store's writes are upserts by id). Each try gets a signal that
 * aborts when the try is given up on (the budget ran out while it was in flight), so what it holds can be let go of.
 */
export async function retryThroughVectorStoreOutage<T>(operation: (signal: AbortSignal) => Promise<T>, options: OutageRetryOptions): Promise<T> {
  if (options.budgetMs <= 0) return operation(new AbortController().signal); // 0: no retries, the store's own error as it is
  const started = Date.now();
  const firstWaitMs = options.firstWaitMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    const tryController = new AbortController();
    try {
      return await withinBudget(operation(tryController.signal), started + options.budgetMs);
    } catch (error) {
      if (error instanceof BudgetSpent) {
        tryController.abort(error);
        throw outlasted(options.budgetMs, Date.now() - started, attempt);
      }
      if (!isVectorStoreUnreachable(error) || options.signal?.aborted) throw error;
      const elapsedMs = Date.now() - started;
      const remainingMs = options.budgetMs - elapsedMs;
      if (remainingMs <= 0) throw outlasted(options.budgetMs, elapsedMs, attempt);
      const ceiling = Math.min(options.maxWaitMs, firstWaitMs * 2 ** (attempt - 1));
      const waitMs = Math.min(remainingMs, Math.round(ceiling * (0.5 + Math.random() / 2)));
      options.onRetry?.(error, { attempt, waitMs, elapsedMs });
      await wait(waitMs, options.signal);
    }
  }
}

class BudgetSpent extends Error {}

/**
 * The try's own outcome, unless the budget ends first: a client that retries inside one call
 * (weaviate-client retries gRPC UNAVAILABLE for up to ~30 s) must not stretch the budget. A try
 * left behind is told through its signal; if it still finishes, the writes are upserts by id, so a late one does no harm.
 */
function withinBudget<T>(pending: Promise<T>, deadline: number): Promise<T> {
  pending.catch(() => {}); // a try left behind must not become an unhandled rejection
  const remainingMs = deadline - Date.now();
  let timer: NodeJS.Timeout | undefined;
  const spent = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BudgetSpent()), Math.max(0, remainingMs));
  });
  return Promise.race([pending, spent]).finally(() => clearTimeout(timer));
}

function outlasted(budgetMs: number, elapsedMs: number, tries: number) {
  const seconds = Math.round(elapsedMs / 100) / 10;
  return new TesseraError(
    ErrorCode.SERVICE_UNAVAILABLE,
    `the vector store could not be reached for ${seconds} s (${tries} tries, VECTOR_STORE_RETRY_MS=${budgetMs}); the asset can be indexed again once it is back`,
    { service: "vectorStore", variable: "VECTOR_STORE_RETRY_MS", budgetMs, tries },
  );
}

function wait(ms: number, signal?: AbortSignal) {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
