import { RateLimiterRedis } from "rate-limiter-flexible";
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import type { Redis } from "../core/redis.ts";
import { withTimeout } from "../core/with-timeout.ts";
import { quotaExceededError, retryAfterSeconds } from "./limit-errors.ts";

/** A slow Redis must not hold up a generation; past this the budget is not enforced for that call (logged). */
const REDIS_TIMEOUT_MS = 500;

export type TokenBudgetHost = {
  redis: Redis;
  logger: Logger;
  config: Pick<Config, "QUEUE_PREFIX" | "QUOTA_GENERATION_TOKENS" | "QUOTA_GENERATION_PERIOD_SECONDS">;
};

// One counter per process and Redis connection; the count itself lives in Redis, shared by gateway and workers.
const budgets = new WeakMap<Redis, RateLimiterRedis>();

function budgetOf({ redis, config }: TokenBudgetHost): RateLimiterRedis {
  let budget = budgets.get(redis);
  if (!budget) {
    budget = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${config.QUEUE_PREFIX}:limits:tokens`,
      points: config.QUOTA_GENERATION_TOKENS,
      // The period starts with the first tokens a project spends and the count resets when it ends.
      duration: config.QUOTA_GENERATION_PERIOD_SECONDS,
      rejectIfRedisNotReady: true,
    });
    budgets.set(redis, budget);
  }
  return budget;
}

/**
 * A count this process saw (a budget GET's answer, or a charge's: RateLimiterRedis answers a penalty with the new
 * count) serves its budget checks for this long while it is under half the budget: a generate mutation then sends
 * no Redis command for its check. The budget is a soft limit already (a running generation finishes and is charged
 * over it); this adds that a refusal may come up to this late when other processes spend more than half the
 * budget within it. A count past half the budget, an older one, or one from a clock that went back is read again.
 */
export const BUDGET_VIEW_FRESH_MS = 1000;
/** Projects whose last count each process remembers (the oldest reading is forgotten first). */
const MAX_VIEWS = 10_000;

/** key -> the count seen and when the command that saw it was sent, per Redis connection (per process). */
const views = new WeakMap<Redis, Map<string, { spent: number; sentAt: number }>>();

function viewsOf(redis: Redis) {
  let seen = views.get(redis);
  if (!seen) views.set(redis, (seen = new Map()));
  return seen;
}

/** Commands on one connection are answered in order: a reading sent later replaces an earlier one, never the reverse. */
function remember(redis: Redis, key: string, spent: number, sentAt: number) {
  const seen = viewsOf(redis);
  const previous = seen.get(key);
  if (previous && previous.sentAt > sentAt) return;
  seen.delete(key);
  if (seen.size >= MAX_VIEWS) seen.delete(seen.keys().next().value!);
  seen.set(key, { spent, sentAt });
}

function knownWellUnder(host: TokenBudgetHost, key: string): boolean {
  const view = views.get(host.redis)?.get(key);
  if (!view) return false;
  const age = Date.now() - view.sentAt;
  return age >= 0 && age < BUDGET_VIEW_FRESH_MS && view.spent < host.config.QUOTA_GENERATION_TOKENS / 2;
}

async function withinDeadline<T>(host: TokenBudgetHost, what: string, work: Promise<T>): Promise<T | undefined> {
  try {
    return await withTimeout(work, REDIS_TIMEOUT_MS, "the token budget's Redis call");
  } catch (error) {
    host.logger.warn({ err: error }, `token budget: Redis did not answer; ${what}`);
    return undefined;
  }
}

/**
 * Refuses a new generation with QUOTA_EXCEEDED once the project has spent
 * QUOTA_GENERATION_TOKENS in the current period; `retryAfterSeconds` is when
 * the period ends. A generation already running finishes (its tokens are
 * charged), so a period can end slightly over budget.
 */
export async function checkTokenBudget(host: TokenBudgetHost, projectId: string): Promise<void> {
  const limit = host.config.QUOTA_GENERATION_TOKENS;
  // Every generate request and job makes this check, and almost always the budget is not spent: one GET of the
  // count RateLimiterRedis keeps (its `get` is MULTI, GET, PTTL, EXEC); the time left is read only for a refusal.
  const key = budgetOf(host).getKey(projectId);
  if (knownWellUnder(host, key)) return;
  const sentAt = Date.now();
  const spent = await withinDeadline(host, "the budget is not checked", readCount(host.redis, key));
  if (spent !== undefined) remember(host.redis, key, spent, sentAt);
  if (spent === undefined || spent < limit) return;
  const msLeft = (await withinDeadline(host, "the time left is not known", host.redis.pttl(key))) ?? -1;
  const seconds = retryAfterSeconds(msLeft >= 0 ? msLeft : host.config.QUOTA_GENERATION_PERIOD_SECONDS * 1000);
  throw quotaExceededError(
    `this project has spent its ${limit} generation tokens for this period (QUOTA_GENERATION_TOKENS per QUOTA_GENERATION_PERIOD_SECONDS); retry after ${seconds} s`,
    { quota: "QUOTA_GENERATION_TOKENS", limit, used: spent, retryAfterSeconds: seconds },
  );
}

/** The tokens counted under `key`, 0 when the period has not started; refused at once while Redis is not connected, as the limiter does. */
async function readCount(redis: Redis, key: string): Promise<number> {
  if (redis.status !== "ready") throw new Error(`Redis is ${redis.status}`);
  const value = await redis.get(key);
  return value === null ? 0 : Number.parseInt(value, 10);
}

/** Adds tokens a generation spent to the project's count for the period (never refuses: they are spent already). */
export async function chargeTokens(host: TokenBudgetHost, projectId: string, tokens: number): Promise<void> {
  if (!(tokens > 0)) return;
  const budget = budgetOf(host);
  const sentAt = Date.now();
  const counted = await withinDeadline(host, `${tokens} tokens of project ${projectId} are not counted`, budget.penalty(projectId, Math.ceil(tokens)));
  // The answer is the project's count after this charge: the next check here need not read it (BUDGET_VIEW_FRESH_MS).
  if (counted) remember(host.redis, budget.getKey(projectId), counted.consumedPoints, sentAt);
}
