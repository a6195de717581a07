import { execFile } from "node:child_process";
import { promisify } from "node:util";
import pg from "pg";
import { applyMigrations } from "../../services/core/migrate.ts";
import { TEST_DATABASE_URL, TEST_WEAVIATE_URL } from "./test-env.ts";

/** Creates the test database if it is missing and applies every migration to it. */
export default async function setup() {
  const url = new URL(TEST_DATABASE_URL);
  const database = url.pathname.slice(1);
  const admin = new pg.Client({ connectionString: Object.assign(new URL(url), { pathname: "/postgres" }).toString() });
  await admin.connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database}"`);
  } finally {
    await admin.end();
  }
  await applyMigrations(TEST_DATABASE_URL);
  await startWeaviate();
}

/**
 * Search tests run against a real Weaviate. The script is idempotent: it
 * builds weaviate-server once (cached outside the checkout), starts it, and
 * returns at once when one is already answering. The server is left running
 * for the next run; `npm run weaviate:stop` stops it.
 */
async function startWeaviate() {
  const url = new URL(TEST_WEAVIATE_URL);
  if (!["127.0.0.1", "localhost"].includes(url.hostname)) return; // a remote Weaviate is the caller's to run
  await promisify(execFile)("bash", ["infra/weaviate/weaviate.sh", "start"], {
    env: { ...process.env, WEAVIATE_HTTP_PORT: url.port || "8080" },
    timeout: 15 * 60_000, // a cold build takes ~3 minutes on 2 cores
    maxBuffer: 16 * 1024 * 1024,
  });
}
