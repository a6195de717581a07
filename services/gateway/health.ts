import { once } from "node:events";
import type { AppContext } from "../app/app-context.ts";
import { withTimeout } from "../core/with-timeout.ts";

type State = "OK" | "DOWN";
export type HealthReport = {
  status: "OK" | "DEGRADED";
  redis: State;
  postgres: State;
  vectorStore: State;
  checks: Array<{ name: string; state: State; latencyMs: number; error: string | null }>;
};

const CHECK_TIMEOUT_MS = 1500;

async function timed(name: string, check: () => Promise<unknown>) {
  const started = performance.now();
  try {
    await withTimeout(check(), CHECK_TIMEOUT_MS, name);
    return { name, state: "OK" as const, latencyMs: Math.round(performance.now() - started), error: null };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { name, state: "DOWN" as const, latencyMs: Math.round(performance.now() - started), error: message };
  }
}

/** Checks every dependency at once; a dead one is reported, never waited on past the timeout. */
export async function checkHealth(app: AppContext): Promise<HealthReport> {
  const [redis, postgres, vectorStore] = await Promise.all([
    timed("redis", async () => {
      // Commands queue while ioredis reconnects, so a Redis that was lost is reported at once;
      // one still making its first connection (a process just started) gets the check's timeout.
      if (app.redis.status === "connecting" || app.redis.status === "connect" || app.redis.status === "wait") {
        await once(app.redis, "ready", { signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
      }
      if (app.redis.status !== "ready") throw new Error(`not connected (${app.redis.status})`);
      await app.redis.ping();
    }),
    timed("postgres", () => app.db.$queryRaw`SELECT 1`),
    timed(`vectorStore (${app.vectorStore.kind})`, () => app.vectorStore.health()),
  ]);
  const checks = [redis, postgres, vectorStore];
  return {
    status: checks.every((check) => check.state === "OK") ? "OK" : "DEGRADED",
    redis: redis.state,
    postgres: postgres.state,
    vectorStore: vectorStore.state,
    checks,
  };
}
