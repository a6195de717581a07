import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProbeServer } from "../../services/observability/probes.ts";
import { freePort } from "../support/own-redis.ts";
import { TcpOutageProxy } from "../support/tcp-outage-proxy.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

/*
 * /live and /ready on the gateway's port and on a worker's own port
 * (WORKER_HTTP_PORT): ready means PostgreSQL (with every migration), Redis and
 * the vector store answer; it turns 503, naming Redis, while Redis cannot be
 * reached (a TCP proxy in front of the shared Redis is taken down), and back
 * to 200 when it returns. /live stays 200 throughout.
 */

type ReadyBody = { status: string; checks: Array<{ name: string; ok: boolean; latencyMs: number; error?: string }> };

async function probe(base: string, route: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`${base}${route}`, { signal: AbortSignal.timeout(15_000) });
  const text = await response.text();
  return { status: response.status, body: response.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

describe("probes: /live and /ready", () => {
  let proxy: TcpOutageProxy;
  let t: TestApp;
  let gateway: string;
  let worker: Awaited<ReturnType<typeof startProbeServer>>;
  let workerBase: string;

  beforeAll(async () => {
    const redis = new URL(TEST_REDIS_URL);
    proxy = await TcpOutageProxy.start(Number(redis.port || 6379), redis.hostname);
    t = await startTestApp({ env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}` } });
    gateway = new URL(t.url).origin;
    // The worker process's probe server (services/worker/main.ts starts it on WORKER_HTTP_PORT) over the same resources.
    worker = await startProbeServer(0, "127.0.0.1", { deps: t.app });
    workerBase = `http://127.0.0.1:${worker.address.port}`;
  });

  afterAll(async () => {
    await proxy?.resume();
    await worker?.close();
    await t?.close();
    await proxy?.stop();
  });

  it("are 200 with every dependency named, 503 naming Redis while it is unreachable, and 200 again after", async () => {
    for (const base of [gateway, workerBase]) {
      expect((await probe(base, "/live")).status).toBe(200);
      const ready = await eventually(async () => {
        const answer = await probe(base, "/ready");
        return answer.status === 200 ? (answer.body as ReadyBody) : null;
      }, 30_000);
      expect(ready.status).toBe("ready");
      expect(ready.checks.map((check) => check.name).sort()).toEqual(["migrations", "postgres", "redis", "vectorStore:embedded"]);
      for (const check of ready.checks) expect(check).toMatchObject({ ok: true, latencyMs: expect.any(Number) });
    }

    await proxy.stop();
    for (const base of [gateway, workerBase]) {
      const down = await eventually(async () => {
        const answer = await probe(base, "/ready");
        return answer.status === 503 ? (answer.body as ReadyBody) : null;
      }, 30_000);
      expect(down.status).toBe("not ready");
      const byName = Object.fromEntries(down.checks.map((check) => [check.name, check]));
      expect(byName.redis).toMatchObject({ ok: false, error: expect.any(String) });
      expect(byName.postgres).toMatchObject({ ok: true });
      // Liveness never depends on a dependency: a restart would not bring Redis back.
      expect((await probe(base, "/live")).status).toBe(200);
    }

    await proxy.resume();
    for (const base of [gateway, workerBase]) {
      await eventually(async () => (await probe(base, "/ready")).status === 200, 60_000);
    }
  }, 180_000);
});

describe("the worker process serves its probes on WORKER_HTTP_PORT", () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGKILL");
  });

  it("answers /live, /ready and /metrics with its queues' depths, and drains on SIGTERM", async () => {
    const root = path.resolve(import.meta.dirname, "..", "..");
    const port = await freePort();
    child = spawn(path.join(root, "node_modules", ".bin", "tsx"), ["services/worker/main.ts"], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: TEST_REDIS_URL, LOG_LEVEL: "silent", QUEUE_PREFIX: `test-probes-${port}`, WORKER_HTTP_PORT: String(port) },
      stdio: "ignore",
    });
    const base = `http://127.0.0.1:${port}`;
    // Starting tsx and loading the worker took 43 s on a loaded CI-like machine: room to spare.
    await eventually(async () => (await probe(base, "/live").catch(() => null))?.status === 200, 150_000);
    await eventually(async () => (await probe(base, "/ready")).status === 200, 60_000);
    const metrics = await probe(base, "/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/tessera_queue_jobs\{queue="ingest",state="waiting"\} 0/);
    expect(metrics.body).toContain("nodejs_eventloop_lag_seconds");
    expect((await probe(base, "/nothing")).status).toBe(404);
    const exited = new Promise<number | null>((resolve) => child!.on("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 300_000);
});
