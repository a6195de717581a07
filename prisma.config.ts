// Prisma CLI configuration. Prisma 6.19 can migrate offline only through its
// wasm schema engine (engine: "js" + a driver adapter); the native engine is a
// download that fails without internet. The three workarounds that path needs
// live here, together, so they can be removed together when Prisma fixes them.
import "dotenv/config";
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

// Workaround 1 (prisma/orm#27403): adapter-pg 6.x cannot map the `name` (OID 19)
// and `"char"` (OID 18) catalog types that the schema engine reads. Report them as text.
const require = createRequire(import.meta.url);
const PgResult = require("pg/lib/result.js");
const addFields = PgResult.prototype.addFields;
PgResult.prototype.addFields = function (fields: Array<{ dataTypeID: number }>) {
  for (const field of fields) if (field.dataTypeID === 19 || field.dataTypeID === 18) field.dataTypeID = 25;
  return addFields.call(this, fields);
};

// Workaround 2: the wasm engine leaves 10 s timers pending, and every CLI call
// would wait them out. Unref long timers so the process exits when done.
const setTimeoutOriginal = globalThis.setTimeout;
globalThis.setTimeout = function (this: unknown, callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) {
  const timer = setTimeoutOriginal(callback, ms, ...args);
  if ((ms ?? 0) >= 10_000) timer.unref?.();
  return timer;
} as typeof setTimeout;

// The schema's `env("DATABASE_URL")` must resolve even where none is set (npm ci's
// `prisma generate`): without it Prisma falls back to downloading a native engine.
process.env.DATABASE_URL ??= "postgresql://postgres@127.0.0.1:5432/tessera";
const databaseUrl = process.env.DATABASE_URL;

function poolConfig(database?: string): pg.PoolConfig {
  const url = new URL(databaseUrl);
  return {
    host: url.hostname,
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: database ?? url.pathname.slice(1),
    idleTimeoutMillis: 200, // pg's 10 s default keeps the CLI alive after it is done
  };
}

async function adminQuery(sql: string) {
  const client = new pg.Client(poolConfig());
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

// Workaround 3: adapter-pg 6.19's shadow database reuses the main database's
// connection string and is dropped while still in use. Manage it ourselves.
class PrismaPgWithShadowDb extends PrismaPg {
  override async connectToShadowDb() {
    const database = `prisma_migrate_shadow_db_${randomUUID()}`;
    await adminQuery(`CREATE DATABASE "${database}"`);
    const adapter = await new PrismaPg(poolConfig(database)).connect();
    const dispose = adapter.dispose.bind(adapter);
    adapter.dispose = async () => {
      await dispose();
      await adminQuery(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    };
    return adapter;
  }
}

export default defineConfig({
  experimental: { adapter: true },
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  engine: "js",
  adapter: async () => new PrismaPgWithShadowDb(poolConfig()),
});
