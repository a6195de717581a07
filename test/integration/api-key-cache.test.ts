import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ApiKeyCache, createApiKey, hashApiKey } from "../../services/core/api-keys.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

it("trusts a checked key only for its time to live: a revoked key stops working after it", async () => {
  const { key, project } = await createApiKey(t.app.db, `cache-${randomUUID()}`);
  const cache = new ApiKeyCache(t.app.db, 300);
  expect((await cache.projectFor(key))?.id).toBe(project.id);

  await t.app.db.apiKey.update({ where: { hash: hashApiKey(key) }, data: { revokedAt: new Date() } });
  expect((await cache.projectFor(key))?.id).toBe(project.id); // still within the time to live
  await new Promise((resolve) => setTimeout(resolve, 350));
  expect(await cache.projectFor(key)).toBeNull();
});

it("does not remember unknown keys, so a key created later works at once", async () => {
  const cache = new ApiKeyCache(t.app.db, 60_000);
  expect(await cache.projectFor("tsk_unknown")).toBeNull();
  const { key } = await createApiKey(t.app.db, `cache-${randomUUID()}`);
  expect(await cache.projectFor(key)).not.toBeNull();
});
