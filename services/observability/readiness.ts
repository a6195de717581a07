import { once } from "node:events";
import fs from "node:fs/promises";
import path from "node:path";
import type { Redis } from "ioredis";
import { withTimeout } from "../core/with-timeout.ts";

/** One model a process loads at start (MODEL_PRELOAD): `waiting` for the one before it, `loading`, `loaded` or `failed`. */
export type ModelPreload = { model: string; state: "waiting" | "loading" | "loaded" | "failed"; error?: string; loadMs?: number };

/** What `/ready` looks at: narrow on purpose, so any process can hand in what it has. */
export type ReadinessDependencies = {
  db: { $queryRawUnsafe<T = unknown>(query: string): Promise<T> };
  redis: Redis;
  vectorStore: { kind: string; health(): Promise<void> };
  /** The models this process preloads; none (a gateway, a worker without MODEL_PRELOAD): no `models` check. */
  models?: { preloads(): ModelPreload[] };
};

export type DependencyCheck = { name: string; ok: boolean; latencyMs: number; error?: string; models?: ModelPreload[] };
export type Readiness = { ready: boolean; checks: DependencyCheck[] };

/** Each check gets this long; a dead dependency is reported, never waited on past it. */
export const READINESS_CHECK_TIMEOUT_MS = 2000;

const MIGRATIONS_DIR = path.resolve(import.meta.dirname, "..", "..", "prisma", "migrations");
let migrationNames: Promise<string[]> | undefined;

/** The migrations this code was built with (folder names under prisma/migrations), read once. */
function expectedMigrations(): Promise<string[]> {
  migrationNames ??= fs
    .readdir(MIGRATIONS_DIR, { withFileTypes: true })
    .then((entries) => entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name))
    // An image without the folder cannot tell: nothing is expected.
    .catch(() => []);
  return migrationNames;
}

async function timed(name: string, check: () => Promise<unknown>, timeoutMs: number): Promise<DependencyCheck> {
  const started = performance.now();
  try {
    await withTimeout(check(), timeoutMs, name);
    return { name, ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { name, ok: false, latencyMs: Math.round(performance.now() - started), error: message };
  }
}

async function pingRedis(redis: Redis, timeoutMs: number) {
  // A connection still on its way (a process just started) is waited for within the check's time;
  // one that was lost fails at once instead of queueing the PING until Redis is back.
  if (redis.status === "connecting" || redis.status === "connect" || redis.status === "wait") {
    await once(redis, "ready", { signal: AbortSignal.timeout(timeoutMs) });
  }
  if (redis.status !== "ready") throw new Error(`not connected (${redis.status})`);
  await redis.ping();
}

async function checkMigrations(db: ReadinessDependencies["db"]) {
  const expected = await expectedMigrations();
  const rows = await db.$queryRawUnsafe<Array<{ migration_name: string }>>(
    `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
  );
  const applied = new Set(rows.map((row) => row.migration_name));
  const missing = expected.filter((name) => !applied.has(name));
  if (missing.length) throw new Error(`migrations not applied: ${missing.join(", ")}`);
}

/** The `models` check: ok once every preloaded model is loaded; its error names those still loading and those that failed. */
function modelsCheck(preloads: ModelPreload[]): DependencyCheck {
  const pending = preloads.filter((preload) => preload.state === "waiting" || preload.state === "loading").map((preload) => preload.model);
  const failed = preloads.filter((preload) => preload.state === "failed").map((preload) => `${preload.model} failed: ${preload.error}`);
  const problems = [...(pending.length ? [`still loading: ${pending.join(", ")}`] : []), ...failed];
  return { name: "models", ok: problems.length === 0, latencyMs: 0, ...(problems.length ? { error: problems.join("; ") } : {}), models: preloads };
}

/**
 * Whether this process can serve: PostgreSQL answers and has every migration
 * of this build, Redis answers, the vector store answers, and (with
 * MODEL_PRELOAD) every model it preloads is loaded. All checks run at once,
 * each bounded by `timeoutMs`.
 */
export async function checkReadiness(deps: ReadinessDependencies, timeoutMs = READINESS_CHECK_TIMEOUT_MS): Promise<Readiness> {
  const checks = await Promise.all([
    timed("postgres", () => deps.db.$queryRawUnsafe("SELECT 1"), timeoutMs),
    timed("migrations", () => checkMigrations(deps.db), timeoutMs),
    timed("redis", () => pingRedis(deps.redis, timeoutMs), timeoutMs),
    timed(`vectorStore:${deps.vectorStore.kind}`, () => deps.vectorStore.health(), timeoutMs),
  ]);
  const preloads = deps.models?.preloads() ?? [];
  if (preloads.length) checks.push(modelsCheck(preloads));
  return { ready: checks.every((check) => check.ok), checks };
}
