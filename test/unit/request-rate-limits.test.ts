import { afterAll, expect, it } from "vitest";
import { createLogger } from "../../services/core/logger.ts";
import { createRedis } from "../../services/core/redis.ts";
import { TesseraError } from "../../services/core/errors.ts";
import { retryAfterSeconds } from "../../services/limits/limit-errors.ts";
import { RequestRateLimits } from "../../services/limits/request-rate-limits.ts";

// Nothing listens on port 1: Redis is "down" for the whole file.
const redis = createRedis("redis://127.0.0.1:1", { retryStrategy: () => 1000 });
redis.on("error", () => {});
afterAll(() => redis.disconnect());

const config = {
  QUEUE_PREFIX: "unit",
  RATE_LIMIT_PROJECT_PER_SECOND: 3,
  RATE_LIMIT_PROJECT_BURST: 0,
  RATE_LIMIT_ADDRESS_PER_SECOND: 0,
  RATE_LIMIT_ADDRESS_BURST: 0,
};

it("never waits on a Redis that is down: it counts in the process instead, and still refuses past the rate", async () => {
  const limits = new RequestRateLimits({ redis, logger: createLogger("silent"), config });
  const started = Date.now();
  const outcomes = await Promise.all(Array.from({ length: 5 }, () => limits.countProject("p1").then(() => "ok", (error) => error)));
  expect(Date.now() - started).toBeLessThan(1000);
  expect(outcomes.filter((outcome) => outcome === "ok")).toHaveLength(3);
  const refusal = outcomes.find((outcome) => outcome !== "ok") as TesseraError;
  expect(refusal).toBeInstanceOf(TesseraError);
  expect(refusal.code).toBe("RATE_LIMITED");
  expect(refusal.details?.retryAfterSeconds).toBe(1);
  // Another project has its own count; a rate of 0 (the address here) is off.
  await expect(limits.countProject("p2")).resolves.toBeUndefined();
  for (let i = 0; i < 10; i++) await expect(limits.countAddress("10.0.0.1")).resolves.toBeUndefined();
});

it("rounds a retry-after up to whole seconds, never 0", () => {
  expect(retryAfterSeconds(0)).toBe(1);
  expect(retryAfterSeconds(1001)).toBe(2);
  expect(retryAfterSeconds(3_600_000)).toBe(3600);
});
