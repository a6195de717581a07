import { ErrorCode, TesseraError } from "../core/errors.ts";

/** Whole seconds a client should wait, never 0: "retry after 0 s" invites a hot loop. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Too many requests in the current window; `details.retryAfterSeconds` says when the window has room again. */
export function rateLimitedError(who: "project" | "address", limit: string, retryAfterMs: number): TesseraError {
  const seconds = retryAfterSeconds(retryAfterMs);
  return new TesseraError(ErrorCode.RATE_LIMITED, `too many requests from this ${who}; retry after ${seconds} s (${limit})`, {
    retryAfterSeconds: seconds,
    limit,
  });
}

/**
 * A project's quota is spent. `retryAfterSeconds` is set where the quota frees by itself at a known time
 * (a token period); concurrency and storage quotas free when the project's own work ends or it deletes assets.
 */
export function quotaExceededError(
  message: string,
  details: { quota: string; limit: number; used: number; retryAfterSeconds?: number },
): TesseraError {
  return new TesseraError(ErrorCode.QUOTA_EXCEEDED, message, details);
}
