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
  const spent = await withinDeadline(host, "the budget is not checked", readCount(host.redis, key));
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
  await withinDeadline(host, `${tokens} tokens of project ${projectId} are not counted`, budgetOf(host).penalty(projectId, Math.ceil(tokens)));
}
