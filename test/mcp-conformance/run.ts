/**
 * The official MCP conformance suite (@modelcontextprotocol/conformance, server mode) against a fresh Tessera:
 *
 *   npx tsx test/mcp-conformance/run.ts [extra conformance args, e.g. --scenario ping --verbose]
 *
 * Starts a gateway on the test database (created and migrated if needed) and Redis (test/support/test-env.ts),
 * makes a project and key, and runs the suite through a proxy that adds the key (conformance.ts). The same run is
 * a test in npm test (test/integration/mcp-conformance.test.ts). Exit code: the suite's.
 */
import pg from "pg";
import { applyMigrations } from "../../services/core/migrate.ts";
import { startTestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";
import { runConformance } from "./conformance.ts";

async function main() {
  const url = new URL(TEST_DATABASE_URL);
  const admin = new pg.Client({ connectionString: Object.assign(new URL(url), { pathname: "/postgres" }).toString() });
  await admin.connect();
  try {
    const database = url.pathname.slice(1);
    if ((await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])).rowCount === 0) await admin.query(`CREATE DATABASE "${database}"`);
  } finally {
    await admin.end();
  }
  await applyMigrations(TEST_DATABASE_URL);
  const t = await startTestApp();
  try {
    const { key } = await t.createProject(`mcp-conformance-${Date.now()}`);
    const { code } = await runConformance(t.url.replace(/\/graphql$/, "/mcp"), key, process.argv.slice(2), { echo: true });
    process.exitCode = code;
  } finally {
    await t.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
