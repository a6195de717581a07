import pg from "pg";
import { applyMigrations } from "../../services/core/migrate.ts";
import { TEST_DATABASE_URL } from "./test-env.ts";

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
}
