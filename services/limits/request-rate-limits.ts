import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/logger.ts";
import type { Redis } from "../core/redis.ts";
import { withTimeout } from "../core/with-timeout.ts";
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
 * Counts one request against one or more rates in one call, in order, stopping at the first that refuses it
 * (a request refused by its address is not counted against its project). Each rate is a steady key (ARGV:
 * points, seconds) and a burst key (points, seconds) used only past the steady points, counted as
 * rate-limiter-flexible's RateLimiterRedis counts (the same keys and script body), so gateways of either kind
 * share a count. Returns {0, 0, ...} when allowed, else {the refusing rate's 1-based index, ms until it has room,
 * ...}, followed by each counted rate's steady count and the ms left in its window.
 */
const COUNT_SCRIPT = `
local function count(key, seconds)
  redis.call('set', key, 0, 'EX', seconds, 'NX')
  local consumed = redis.call('incrby', key, 1)
  local ttl = redis.call('pttl', key)
  if ttl == -1 then
    redis.call('expire', key, seconds)
    ttl = 1000 * seconds
  end
  return consumed, ttl
end
local answer = {0, 0}
for i = 1, #KEYS, 2 do
  local a = (i - 1) * 2
  local consumed, ttl = count(KEYS[i], ARGV[a + 2])
  table.insert(answer, consumed)
  table.insert(answer, ttl)
  if consumed > tonumber(ARGV[a + 1]) then
    local burst, burstTtl = count(KEYS[i + 1], ARGV[a + 4])
    if burst > tonumber(ARGV[a + 3]) then
      answer[1] = (i + 1) / 2
      answer[2] = math.min(ttl, burstTtl)
      return answer
    end
  end
end
return answer
`;
const COUNT_COMMAND = "tesseraCountRequestRates";
type CountingRedis = { [COUNT_COMMAND](keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number[]> };
/** How many subjects (addresses, projects) each process remembers the last count of. */
const MAX_REMEMBERED = 10_000;

/**
 * One request rate: a steady rate per second plus a burst allowance. Its Redis
 * keys are counted by RequestRateLimits' script; when Redis is down or slow,
 * the process's own memory counts instead of refusing everyone or waiting.
 */
class RequestRate {
  private readonly local: BurstyRateLimiter;
  /** The script's ARGV for this rate: steady points and seconds, burst points and seconds. */
  readonly args: readonly number[];

  constructor(
    readonly kind: "address" | "project",
    private readonly keyPrefix: string,
    readonly rate: Rate,
  ) {
    const steady = { points: rate.perSecond, duration: 1 };
    // A burst of 0 still needs a limiter; 0 points there refuses every extra request.
    const burst = { points: rate.burst, duration: BURST_WINDOW_SECONDS };
    this.local = new BurstyRateLimiter(new RateLimiterMemory(steady), new RateLimiterMemory(burst));
    this.args = [steady.points, steady.duration, burst.points, burst.duration];
  }

  get describe(): string {
    return `${this.rate.perSecond}/s, burst ${this.rate.burst} per ${BURST_WINDOW_SECONDS} s`;
  }

  /** The steady and the burst key of `subject` (RateLimiterRedis' names for its keyPrefix and key). */
  keys(subject: string): [string, string] {
    return [`${this.keyPrefix}:rate:${subject}`, `${this.keyPrefix}:burst:${subject}`];
  }

  /** Counts `subject` in this process only: null when allowed, else the milliseconds until there is room. */
  async consumeLocally(subject: string): Promise<number | null> {
    try {
      await this.local.consume(subject);
      return null;
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return refusal.msBeforeNext;
      throw refusal;
    }
  }

  /** This process's view of each subject's steady window: its count at the last answer, counts not answered yet. */
  private readonly seen = new Map<string, { consumed: number; windowEnds: number; pending: number }>();

  /**
   * Whether this process saw `subject` well under its steady rate: its window's count at the last answer plus the
   * counts still unanswered is under half the rate, or that window is over and it was under the rate then. A subject
   * never counted here has no room known.
   */
  hasRoom(subject: string, now: number): boolean {
    const view = this.seen.get(subject);
    if (!view) return false;
    const current = now < view.windowEnds ? view.consumed : view.consumed <= this.rate.perSecond ? 0 : Infinity;
    return current + view.pending < this.rate.perSecond / 2;
  }

  /** A count of `subject` went to Redis; call the returned function with its answer (or none) when it comes. */
  sent(subject: string): (consumed?: number, ttlMs?: number) => void {
    let view = this.seen.get(subject);
    if (!view) {
      if (this.seen.size >= MAX_REMEMBERED) this.seen.delete(this.seen.keys().next().value!);
      view = { consumed: Infinity, windowEnds: 0, pending: 0 };
      this.seen.set(subject, view);
    }
    const counted = view;
    counted.pending++;
    return (consumed, ttlMs) => {
      counted.pending--;
      if (consumed !== undefined && ttlMs !== undefined) Object.assign(counted, { consumed, windowEnds: Date.now() + ttlMs });
    };
  }

  refusal(waitMs: number) {
    const variable = this.kind === "address" ? "RATE_LIMIT_ADDRESS_PER_SECOND" : "RATE_LIMIT_PROJECT_PER_SECOND";
    return rateLimitedError(this.kind, `${variable}: ${this.describe}`, waitMs);
  }
}

/**
 * Requests per second per client address (before the key is known) and per
 * project (after), counted in Redis so every gateway process shares the count.
 * Each count throws RATE_LIMITED with `details.retryAfterSeconds`. A rate of 0
 * turns that limit off. `countRequest` counts both in one Redis call, for a
 * request whose project is known before its body is read (a cached key).
 */
export class RequestRateLimits {
  private readonly address?: RequestRate;
  private readonly project?: RequestRate;
  private readonly redis: Redis;
  private readonly logger: Logger;

  constructor({ redis, logger, config }: RateLimitHost) {
    this.redis = redis;
    this.logger = logger;
    const prefix = `${config.QUEUE_PREFIX}:limits`;
    if (config.RATE_LIMIT_ADDRESS_PER_SECOND > 0) {
      this.address = new RequestRate("address", `${prefix}:address`, { perSecond: config.RATE_LIMIT_ADDRESS_PER_SECOND, burst: config.RATE_LIMIT_ADDRESS_BURST });
    }
    if (config.RATE_LIMIT_PROJECT_PER_SECOND > 0) {
      this.project = new RequestRate("project", `${prefix}:project`, { perSecond: config.RATE_LIMIT_PROJECT_PER_SECOND, burst: config.RATE_LIMIT_PROJECT_BURST });
    }
    // ioredis sends it by its SHA and loads it once per connection (what rate-limiter-flexible does for its own).
    if (typeof redis.defineCommand === "function") redis.defineCommand(COUNT_COMMAND, { lua: COUNT_SCRIPT });
  }

  countAddress(address: string): Promise<void> {
    return this.countRequest(address, undefined);
  }

  countProject(projectId: string): Promise<void> {
    return this.countRequest(undefined, projectId);
  }

  private countsOf(address: string | undefined, projectId: string | undefined) {
    const counts: Array<[RequestRate, string]> = [];
    if (this.address && address !== undefined) counts.push([this.address, address]);
    if (this.project && projectId !== undefined) counts.push([this.project, projectId]);
    return counts;
  }

  /**
   * Whether this process last saw both the address and the project well under their rates (RequestRate.hasRoom):
   * a refusal of this request is then unlikely, so it may be served while its count is on its way (the gateway
   * holds its answer until the count has come back). A limit that is off always has room.
   */
  hasRoom(address: string | undefined, projectId: string | undefined): boolean {
    const now = Date.now();
    return this.countsOf(address, projectId).every(([rate, subject]) => rate.hasRoom(subject, now));
  }

  /**
   * Counts a request against its address, then its project (either may be absent): one Redis call for both.
   * `sendAfter`: the call goes out once it settles (the gateway lets a query's first call out go first), but the
   * count is on its way for hasRoom from now, so requests arriving together cannot all pass it meanwhile.
   */
  async countRequest(address: string | undefined, projectId: string | undefined, sendAfter?: Promise<unknown>): Promise<void> {
    const counts = this.countsOf(address, projectId);
    if (counts.length === 0) return;
    let answer: number[] | undefined;
    // As RateLimiterRedis' rejectIfRedisNotReady: a command to a Redis that is not ready would wait in its queue.
    if (this.redis.status === "ready") {
      const keys = counts.flatMap(([rate, subject]) => rate.keys(subject));
      const args = counts.flatMap(([rate]) => rate.args);
      const answered = counts.map(([rate, subject]) => rate.sent(subject));
      try {
        if (sendAfter) await sendAfter;
        answer = (await withTimeout((this.redis as unknown as CountingRedis)[COUNT_COMMAND](keys.length, ...keys, ...args), REDIS_TIMEOUT_MS, "the rate limits' Redis count")).map(Number);
      } catch (error) {
        this.logger.warn({ err: error }, "rate limits: Redis did not answer; counting in this process");
      } finally {
        answered.forEach((done, index) => done(answer?.[2 + 2 * index], answer?.[3 + 2 * index]));
      }
    } else {
      this.logger.warn("rate limits: Redis is not connected; counting in this process");
    }
    if (answer) {
      const [refusedBy, waitMs] = answer as [number, number];
      if (refusedBy > 0) throw counts[refusedBy - 1]![0].refusal(waitMs);
      return;
    }
    for (const [rate, subject] of counts) {
      const waitMs = await rate.consumeLocally(subject);
      if (waitMs !== null) throw rate.refusal(waitMs);
    }
  }
}
