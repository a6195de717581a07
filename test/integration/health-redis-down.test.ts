import type { ChildProcess } from "node:child_process";
import { afterAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { freePort, spawnOwnRedis } from "../support/own-redis.ts";

let redis: ChildProcess | undefined;
let t: TestApp | undefined;
afterAll(async () => {
  await t?.close().catch(() => {});
  redis?.kill("SIGKILL");
});

it("reports Redis as DOWN, quickly, when it stops, and the gateway stays up", async () => {
  // A Redis of our own, so stopping it disturbs no other test.
  const port = await freePort();
  redis = spawnOwnRedis(port);
  t = await startTestApp({ env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
  const query = "{ health { status redis postgres } }";
  await eventually(async () => (await t!.graphql(query)).data?.health.redis === "OK");

  redis.kill("SIGKILL");
  await new Promise((resolve) => redis!.once("exit", resolve));
  const started = Date.now();
  const response = await t.graphql(query);
  expect(Date.now() - started).toBeLessThan(3000);
  expect(response.data.health).toEqual({ status: "DEGRADED", redis: "DOWN", postgres: "OK" });

  // The dependency's own words (and how long each check took) are for callers with a key only.
  const details = "{ health { status redis checks { name state latencyMs error } } }";
  const anonymous = await t.graphql(details);
  expect(anonymous.errors).toBeUndefined();
  expect(anonymous.data.health.redis).toBe("DOWN");
  for (const check of anonymous.data.health.checks) expect(check).toMatchObject({ latencyMs: null, error: null });
  const { key } = await t.createProject();
  const keyed = await t.graphql(details, undefined, key);
  const redisCheck = keyed.data.health.checks.find((check: { name: string }) => check.name === "redis");
  expect(redisCheck).toMatchObject({ state: "DOWN", error: expect.any(String), latencyMs: expect.any(Number) });
});
