import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { OpenSubscriptions, RELEASE_BATCH_MS } from "../../services/gateway/open-subscriptions.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * Every subscription takes a place in Redis with a Lua script. Sent as EVAL, each one carries the script's text;
 * registered as a command, ioredis sends its SHA (EVALSHA) and the text at most once per connection.
 */

let t: TestApp;
let redis: Redis;
const sent: string[] = [];
beforeAll(async () => {
  t = await startTestApp();
  redis = t.app.redis.duplicate();
  await redis.ping(); // connected first: a command queued before that passes through sendCommand twice
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command) => {
    sent.push(command.name.toUpperCase());
    return send(command);
  };
});
afterAll(async () => {
  redis?.disconnect();
  await t?.close();
});

it("takes each subscription's place by the script's SHA, not its text", async () => {
  const subscriptions = new OpenSubscriptions({ redis, db: t.app.db, logger: t.app.logger, prefix: t.app.config.QUEUE_PREFIX }, { maxPerProject: 10, recheckMs: 60_000 });
  const projectId = `place-script-${Date.now()}`;
  const slots = [];
  for (let index = 0; index < 5; index++) slots.push(await subscriptions.open(projectId, "key-hash"));
  await expect(subscriptions.open(projectId, "key-hash").then(() => "opened")).resolves.toBe("opened");
  const scripts = sent.filter((name) => name === "EVAL" || name === "EVALSHA");
  expect(scripts).toHaveLength(6);
  expect(scripts.filter((name) => name === "EVAL").length).toBeLessThanOrEqual(1);
  for (const slot of slots) slot.close();
  subscriptions.dispose();
});

it("still refuses a place past the cap", async () => {
  const subscriptions = new OpenSubscriptions({ redis, db: t.app.db, logger: t.app.logger, prefix: t.app.config.QUEUE_PREFIX }, { maxPerProject: 2, recheckMs: 60_000 });
  const projectId = `place-cap-${Date.now()}`;
  await subscriptions.open(projectId, "key-hash");
  await subscriptions.open(projectId, "key-hash");
  await expect(subscriptions.open(projectId, "key-hash")).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
  subscriptions.dispose();
});

it("gives back the places of subscriptions that end together in one command, not one each", async () => {
  const subscriptions = new OpenSubscriptions({ redis, db: t.app.db, logger: t.app.logger, prefix: t.app.config.QUEUE_PREFIX }, { maxPerProject: 10, recheckMs: 60_000 });
  const projectId = `place-release-${Date.now()}`;
  const slots = [];
  for (let index = 0; index < 5; index++) slots.push(await subscriptions.open(projectId, "key-hash"));
  const key = `${t.app.config.QUEUE_PREFIX}:subscriptions:${projectId}`;
  expect(await redis.zcard(key)).toBe(5);
  sent.length = 0;
  for (const slot of slots) slot.close();
  await new Promise((resolve) => setTimeout(resolve, RELEASE_BATCH_MS + 100));
  expect(sent.filter((name) => name === "ZREM")).toHaveLength(1);
  expect(await redis.zcard(key)).toBe(0);
  subscriptions.dispose();
});

it("frees a place given back for this gateway's next open at once, at the cap", async () => {
  const subscriptions = new OpenSubscriptions({ redis, db: t.app.db, logger: t.app.logger, prefix: t.app.config.QUEUE_PREFIX }, { maxPerProject: 2, recheckMs: 60_000 });
  const projectId = `place-reuse-${Date.now()}`;
  const first = await subscriptions.open(projectId, "key-hash");
  await subscriptions.open(projectId, "key-hash");
  first.close();
  await expect(subscriptions.open(projectId, "key-hash").then(() => "opened")).resolves.toBe("opened");
  await expect(subscriptions.open(projectId, "key-hash")).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
  subscriptions.dispose();
});

it("sends the places given back when disposed", async () => {
  const subscriptions = new OpenSubscriptions({ redis, db: t.app.db, logger: t.app.logger, prefix: t.app.config.QUEUE_PREFIX }, { maxPerProject: 10, recheckMs: 60_000 });
  const projectId = `place-dispose-${Date.now()}`;
  const slot = await subscriptions.open(projectId, "key-hash");
  slot.close();
  subscriptions.dispose();
  await redis.ping(); // after the pipeline on the same connection
  expect(await redis.zcard(`${t.app.config.QUEUE_PREFIX}:subscriptions:${projectId}`)).toBe(0);
});
