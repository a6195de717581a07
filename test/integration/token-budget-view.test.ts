import { randomUUID } from "node:crypto";
import { afterAll, afterEach, expect, it, vi } from "vitest";
import { createLogger } from "../../services/core/logger.ts";
import { createRedis, type Redis } from "../../services/core/redis.ts";
import { BUDGET_VIEW_FRESH_MS, chargeTokens, checkTokenBudget } from "../../services/limits/token-budget.ts";
import { TEST_REDIS_URL } from "../support/test-env.ts";

// A budget check is served from the count this process last saw (a GET's answer or a charge's) when that is under
// half the budget and younger than BUDGET_VIEW_FRESH_MS; otherwise it reads Redis. Two connections stand for two
// processes: each has its own view, the count is shared.
const connections: Redis[] = [];
afterAll(() => Promise.all(connections.map((redis) => redis.quit())));
afterEach(() => vi.restoreAllMocks());

function host(limit: number) {
  const redis = createRedis(TEST_REDIS_URL);
  connections.push(redis);
  const commands: string[] = [];
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: Parameters<Redis["sendCommand"]>[0], ...rest: unknown[]) => {
    commands.push(command.name.toUpperCase());
    return (send as (...args: unknown[]) => unknown)(command, ...rest);
  }) as Redis["sendCommand"];
  const config = { QUEUE_PREFIX: `budget-view-${randomUUID().slice(0, 8)}`, QUOTA_GENERATION_TOKENS: limit, QUOTA_GENERATION_PERIOD_SECONDS: 3600 };
  return { redis, logger: createLogger("silent"), config, commands };
}

/** Connected, its handshake's commands (HELLO, CLIENT, INFO) not counted. */
async function ready(...hosts: ReturnType<typeof host>[]) {
  for (const { redis, commands } of hosts) {
    if (redis.status !== "ready") await new Promise((resolve) => redis.once("ready", resolve));
    commands.length = 0;
  }
}

it("checks a project's budget without Redis while this process last saw it well under the limit; reads it again past half, or once the view is old", async () => {
  const gateway = host(100);
  await ready(gateway);
  const projectId = randomUUID();

  await checkTokenBudget(gateway, projectId); // nothing known: one GET
  expect(gateway.commands).toEqual(["GET"]);
  await checkTokenBudget(gateway, projectId); // 0 of 100, just read: no command
  expect(gateway.commands).toEqual(["GET"]);

  await chargeTokens(gateway, projectId, 30); // the charge's answer is a count too: 30 of 100
  gateway.commands.length = 0;
  await checkTokenBudget(gateway, projectId);
  expect(gateway.commands).toEqual([]);

  await chargeTokens(gateway, projectId, 25); // 55: past half the budget, every check reads the count
  gateway.commands.length = 0;
  await checkTokenBudget(gateway, projectId);
  await checkTokenBudget(gateway, projectId);
  expect(gateway.commands).toEqual(["GET", "GET"]);

  await chargeTokens(gateway, projectId, 50); // 105: spent
  await expect(checkTokenBudget(gateway, projectId)).rejects.toMatchObject({ code: "QUOTA_EXCEEDED", details: { used: 105, limit: 100 } });

  // Another project's view is its own.
  gateway.commands.length = 0;
  await checkTokenBudget(gateway, randomUUID());
  expect(gateway.commands).toEqual(["GET"]);
});

it("sees what another process spent within BUDGET_VIEW_FRESH_MS of its own last reading, and refuses then", async () => {
  const gateway = host(1000);
  const worker = host(1000);
  worker.config.QUEUE_PREFIX = gateway.config.QUEUE_PREFIX; // one count, two processes
  await ready(gateway, worker);
  const projectId = randomUUID();

  await checkTokenBudget(gateway, projectId); // the gateway reads 0
  await chargeTokens(worker, projectId, 2000); // the worker's jobs spend the budget (the gateway cannot know)
  await checkTokenBudget(gateway, projectId); // within the view's life: admitted, as a job already queued would be

  const now = Date.now();
  vi.spyOn(Date, "now").mockReturnValue(now + BUDGET_VIEW_FRESH_MS);
  gateway.commands.length = 0;
  await expect(checkTokenBudget(gateway, projectId)).rejects.toMatchObject({ code: "QUOTA_EXCEEDED", details: { used: 2000 } });
  expect(gateway.commands[0]).toBe("GET");

  // A clock that went back since the reading (its age reads below 0) does not count as fresh either.
  vi.restoreAllMocks();
  const other = randomUUID();
  await checkTokenBudget(gateway, other);
  await chargeTokens(worker, other, 2000);
  vi.spyOn(Date, "now").mockReturnValue(Date.now() - 60_000);
  await expect(checkTokenBudget(gateway, other)).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
});
