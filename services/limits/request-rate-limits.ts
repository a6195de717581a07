import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import type { Redis } from "../core/redis.ts";
import { rateLimitedError } from "./limit-errors.ts";

/** The extra requests of RATE_LIMIT_*_BURST are counted over this window. */
export const BURST_WINDOW_SECONDS = 10;
/** A slow Redis must not slow every request: past this, the process's own counters decide. */
const REDIS_TIMEOUT_MS = 250;

export type RateLimitConfig = Pick<
  Config,
  "QUEUE_PREFIX" | "RATE_LIMIT_PROJECT_PER_SECOND" | "RATE_LIMIT_PROJECT_BURST" | "RATE_LIMIT_ADDRESS_PER_SECOND" | "RATE_LIMIT_ADDRESS_BURST"
>;

export type RateLimitHost = { redis: Redis; logger: Logger; config: RateLimitConfig };

type Rate = { perSecond: number; burst: number };

/**
 * One request rate: a steady rate per second plus a burst allowance, counted
 * in Redis so every gateway process shares the count. When Redis is down or
 * slow, counting falls back to this process's memory instead of refusing
 * everyone or waiting for Redis.
 */
class RequestRate {
  private readonly shared: BurstyRateLimiter;
  private readonly local: BurstyRateLimiter;

  constructor(
    redis: Redis,
    keyPrefix: string,
    readonly rate: Rate,
    private readonly logger: Logger,
  ) {
    const steady = { points: rate.perSecond, duration: 1 };
    // A burst of 0 still needs a limiter; 0 points there refuses every extra request.
    const burst = { points: rate.burst, duration: BURST_WINDOW_SECONDS };
    this.shared = new BurstyRateLimiter(
      new RateLimiterRedis({ storeClient: redis, keyPrefix: `${keyPrefix}:rate`, rejectIfRedisNotReady: true, ...steady }),
      new RateLimiterRedis({ storeClient: redis, keyPrefix: `${keyPrefix}:burst`, rejectIfRedisNotReady: true, ...burst }),
    );
    this.local = new BurstyRateLimiter(new RateLimiterMemory(steady), new RateLimiterMemory(burst));
  }

  get describe(): string {
    return `${this.rate.perSecond}/s, burst ${this.rate.burst} per ${BURST_WINDOW_SECONDS} s`;
  }

  /** Counts one request for `key`: null when allowed, else the milliseconds until there is room. */
  async consume(key: string): Promise<number | null> {
    try {
      await withDeadline(this.shared.consume(key), REDIS_TIMEOUT_MS);
      return null;
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return refusal.msBeforeNext;
      this.logger.warn({ err: refusal }, "rate limits: Redis did not answer; counting in this process");
    }
    try {
      await this.local.consume(key);
      return null;
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return refusal.msBeforeNext;
      throw refusal;
    }
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Requests per second per client address (before the key is known) and per
 * project (after). Each throws RATE_LIMITED with `details.retryAfterSeconds`.
 * A rate of 0 turns that limit off.
 */
export class RequestRateLimits {
  private readonly address?: RequestRate;
  private readonly project?: RequestRate;

  constructor({ redis, logger, config }: RateLimitHost) {
    const prefix = `${config.QUEUE_PREFIX}:limits`;
    if (config.RATE_LIMIT_ADDRESS_PER_SECOND > 0) {
      this.address = new RequestRate(redis, `${prefix}:address`, { perSecond: config.RATE_LIMIT_ADDRESS_PER_SECOND, burst: config.RATE_LIMIT_ADDRESS_BURST }, logger);
    }
    if (config.RATE_LIMIT_PROJECT_PER_SECOND > 0) {
      this.project = new RequestRate(redis, `${prefix}:project`, { perSecond: config.RATE_LIMIT_PROJECT_PER_SECOND, burst: config.RATE_LIMIT_PROJECT_BURST }, logger);
    }
  }

  async countAddress(address: string): Promise<void> {
    if (!this.address) return;
    const waitMs = await this.address.consume(address);
    if (waitMs !== null) throw rateLimitedError("address", `RATE_LIMIT_ADDRESS_PER_SECOND: ${this.address.describe}`, waitMs);
  }

  async countProject(projectId: string): Promise<void> {
    if (!this.project) return;
    const waitMs = await this.project.consume(projectId);
    if (waitMs !== null) throw rateLimitedError("project", `RATE_LIMIT_PROJECT_PER_SECOND: ${this.project.describe}`, waitMs);
  }
}
