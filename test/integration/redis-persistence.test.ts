import type { ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { freePort, spawnOwnRedis } from "../support/own-redis.ts";

const root = path.resolve(import.meta.dirname, "..", "..");

/** The persistence flags `infra/setup-local.sh` starts Redis with (where and how to run it are this test's own). */
async function setupLocalRedisFlags(): Promise<string[]> {
  const script = await fs.readFile(path.join(root, "infra", "setup-local.sh"), "utf8");
  const line = script.replace(/\\\n\s*/g, " ").match(/redis-server (--[^\n]*)/)?.[1];
  if (!line) throw new Error("infra/setup-local.sh starts no redis-server");
  const words = (line.match(/"[^"]*"|\S+/g) ?? []).map((word) => word.replace(/^"(.*)"$/, "$1"));
  const flags: string[] = [];
  for (let i = 0; i < words.length; i += 2) {
    if (!words[i]!.startsWith("--")) break;
    if (["--daemonize", "--bind", "--port", "--dir", "--logfile"].includes(words[i]!)) continue;
    flags.push(words[i]!, words[i + 1]!);
  }
  return flags;
}

let redis: ChildProcess | undefined;
let t: TestApp | undefined;
let dir: string | undefined;
afterAll(async () => {
  await t?.close().catch(() => {});
  redis?.kill("SIGKILL");
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

it("keeps a queued job when Redis, started as infra/setup-local.sh starts it, is killed and started again", async () => {
  const flags = await setupLocalRedisFlags();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-redis-"));
  const port = await freePort();
  const startRedis = () => spawnOwnRedis(port, ["--dir", dir!, ...flags]);
  redis = startRedis();
  t = await startTestApp({ env: { REDIS_URL: `redis://127.0.0.1:${port}` } }); // no worker: the job stays queued
  await eventually(async () => (await t!.graphql("{ health { redis } }")).data?.health.redis === "OK");
  const { key } = await t.createProject();
  const ingested = await t.graphql(`mutation { ingest(input: { text: "survives a restart" }) { job { id } } }`, {}, key);
  expect(ingested.errors).toBeUndefined();
  const jobId = ingested.data.ingest.job.id;
  expect(await t.app.queues.queue("ingest").getJob(jobId)).toBeDefined();

  // appendfsync everysec: what was acknowledged more than a second ago is on disk, even after kill -9.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  redis.kill("SIGKILL");
  await new Promise((resolve) => redis!.once("exit", resolve));
  redis = startRedis();
  const job = await eventually(async () => {
    try {
      return (await t!.app.queues.queue("ingest").getJob(jobId)) ?? "lost";
    } catch {
      return null; // not reconnected yet
    }
  }, 20_000);
  expect(job).not.toBe("lost");
  expect(await (job as Exclude<typeof job, string>).getState()).toBe("waiting");
}, 60_000);

it("runs Redis with an append-only file, fsynced every second, in docker-compose too", async () => {
  const compose = await fs.readFile(path.join(root, "docker-compose.yml"), "utf8");
  const command = compose.match(/redis:\s*\n(?:\s+.*\n)*?\s+command: (\[.*\])/)?.[1];
  expect(command).toBeDefined();
  const args = JSON.parse(command!) as string[];
  expect(args[args.indexOf("--appendonly") + 1]).toBe("yes");
  expect(args[args.indexOf("--appendfsync") + 1]).toBe("everysec");
});
