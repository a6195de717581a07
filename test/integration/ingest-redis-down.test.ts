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

it("answers ingest and runWorkflow with SERVICE_UNAVAILABLE within seconds while Redis is down, and stores nothing", async () => {
  // A Redis of our own, so stopping it disturbs no other test.
  const port = await freePort();
  redis = spawnOwnRedis(port);
  t = await startTestApp({ env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
  await eventually(async () => (await t!.graphql("{ health { redis } }")).data?.health.redis === "OK");
  const { key, projectId } = await t.createProject();
  const published = await t.graphql(
    `mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`,
    { d: "apiVersion: tessera/v1\nkind: Workflow\nslug: tiny\nsteps:\n  - id: a\n    uses: transform\n    with: { x: 1 }\n" },
    key,
  );
  expect(published.errors).toBeUndefined();
  // The queue for each name exists before the outage, as it does in a gateway that has served requests.
  expect((await t.graphql(`mutation { ingest(input: { text: "before the outage" }) { job { id } } }`, {}, key)).errors).toBeUndefined();

  redis.kill("SIGKILL");
  await new Promise((resolve) => redis!.once("exit", resolve));

  for (const [operation, field] of [
    [`mutation { ingest(input: { text: "during the outage" }) { asset { id } } }`, "ingest"],
    [`mutation { runWorkflow(slug: "tiny") { id } }`, "runWorkflow"],
  ] as const) {
    const started = Date.now();
    const response = await Promise.race([
      t.graphql(operation, {}, key),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${field} still waiting after 15 s`)), 15_000)),
    ]);
    const elapsed = Date.now() - started;
    console.log(`${field} with Redis down answered in ${elapsed} ms`);
    expect(response.errors?.[0]?.extensions?.code).toBe("SERVICE_UNAVAILABLE");
    expect(response.errors?.[0]?.message).toMatch(/job queue is unavailable/);
    expect(elapsed).toBeLessThan(5000);
  }
  // Only the asset ingested before the outage is stored; no run was left behind.
  expect(await t.app.db.asset.count({ where: { projectId } })).toBe(1);
  expect(await t.app.db.job.count({ where: { projectId } })).toBe(1);
  expect(await t.app.db.run.count({ where: { projectId } })).toBe(0);
}, 60_000);

it("answers ingest with SERVICE_UNAVAILABLE after QUEUE_ADD_TIMEOUT_MS when Redis is connected but does not answer", async () => {
  const port = await freePort();
  const frozen = spawnOwnRedis(port);
  const app = await startTestApp({ env: { REDIS_URL: `redis://127.0.0.1:${port}`, QUEUE_ADD_TIMEOUT_MS: "1000" } });
  try {
    await eventually(async () => (await app.graphql("{ health { redis } }")).data?.health.redis === "OK");
    const { key, projectId } = await app.createProject();
    expect((await app.graphql(`mutation { ingest(input: { text: "before" }) { job { id } } }`, {}, key)).errors).toBeUndefined();

    frozen.kill("SIGSTOP"); // the socket stays open; nothing answers
    const started = Date.now();
    const response = await app.graphql(`mutation { ingest(input: { text: "while frozen" }) { asset { id } } }`, {}, key);
    const elapsed = Date.now() - started;
    console.log(`ingest with Redis frozen answered in ${elapsed} ms`);
    expect(response.errors?.[0]?.extensions?.code).toBe("SERVICE_UNAVAILABLE");
    expect(elapsed).toBeLessThan(4000);
    expect(await app.app.db.asset.count({ where: { projectId } })).toBe(1);
    expect(await app.app.db.job.count({ where: { projectId } })).toBe(1);
  } finally {
    frozen.kill("SIGKILL");
    await app.close().catch(() => {});
  }
}, 60_000);
