import pg from "pg";
import { Redis } from "ioredis";
import type { Config } from "./config.ts";
import { createRequestRedis } from "./redis.ts";
import { redactSecrets } from "./secret-redaction.ts";

export class DependencyUnavailableError extends Error {
  constructor(
    readonly dependency: string,
    readonly address: string,
    cause: string,
    hint: string,
  ) {
    super(redactSecrets(`${dependency} is not reachable at ${address} (${cause}).\n${hint}`));
    this.name = "DependencyUnavailableError";
  }
}

function timeout(ms: number, message: string) {
  return new Promise<never>((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());
}

function describe(error: unknown) {
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return String(error);
}

/** PostgreSQL answers a query within a few seconds, or we say where we looked. */
export async function checkPostgres(config: Config) {
  const url = new URL(config.DATABASE_URL);
  const address = `${url.hostname}:${url.port || 5432}`;
  const client = new pg.Client({ connectionString: config.DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
  } catch (error) {
    throw new DependencyUnavailableError(
      "PostgreSQL",
      address,
      describe(error),
      "Start it with `docker compose up -d postgres`, or set DATABASE_URL to a running server.",
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/** Redis answers PING within a few seconds, or we say where we looked. */
export async function checkRedis(config: Config) {
  const url = new URL(config.REDIS_URL);
  const cluster = config.REDIS_CLUSTER_NODES.length > 0;
  const address = cluster ? `${config.REDIS_CLUSTER_NODES.join(",")} (cluster)` : `${url.hostname}:${url.port || 6379}`;
  const redis = cluster
    ? createRequestRedis(config, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0 })
    : new Redis(config.REDIS_URL, {
        lazyConnect: true,
        connectTimeout: 3000,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        enableOfflineQueue: false,
      });
  redis.on("error", () => {}); // reported below
  try {
    await (cluster ? Promise.race([redis.connect(), timeout(10_000, "the cluster did not become ready")]) : redis.connect());
    await redis.ping();
  } catch (error) {
    throw new DependencyUnavailableError(
      "Redis",
      address,
      describe(error),
      cluster
        ? "Start the cluster (`bash infra/redis-cluster/redis-cluster.sh start` locally), or set REDIS_CLUSTER_NODES to running nodes."
        : "Start it with `docker compose up -d redis`, or set REDIS_URL to a running server.",
    );
  } finally {
    redis.disconnect();
  }
}

export async function checkDependencies(config: Config) {
  await Promise.all([checkPostgres(config), checkRedis(config)]);
}
