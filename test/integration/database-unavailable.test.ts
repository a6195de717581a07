import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { createDatabase, sql } from "../../services/core/database.ts";
import { maskError } from "../../services/gateway/graphql-errors.ts";
import { freePort } from "../support/own-redis.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

// While PostgreSQL is down or restarting (issue #15's postgres chaos scenario), a request must get a typed
// SERVICE_UNAVAILABLE a client retries, not "Unexpected error." (INTERNAL_SERVER_ERROR). Real errors from Prisma:
// a server that is not there, and a query whose connection the server terminated (its fast shutdown does that).
const base = TEST_DATABASE_URL;
const dead = createDatabase(`postgresql://postgres@127.0.0.1:${await freePort()}/nothing`);
const application = `terminated_${Math.random().toString(36).slice(2, 8)}`;
const live = createDatabase(`${base}${base.includes("?") ? "&" : "?"}application_name=${application}`);
afterAll(async () => {
  await dead.$disconnect();
  await live.$disconnect();
});

const codeOf = (error: unknown) => (maskError(error, "Unexpected error.") as { extensions?: { code?: string } }).extensions?.code;

it("a database that cannot be reached is SERVICE_UNAVAILABLE, through the model API and a raw query alike", async () => {
  const viaModel = await dead.asset.count().catch((error: unknown) => error);
  const viaRaw = await dead.$queryRaw`SELECT 1`.catch((error: unknown) => error);
  // The hot paths' statements straight on node-postgres (sql) get the socket's own error, not Prisma's.
  const viaPool = await sql(dead, "SELECT 1", []).catch((error: unknown) => error);
  expect(codeOf(viaModel)).toBe("SERVICE_UNAVAILABLE");
  expect(codeOf(viaRaw)).toBe("SERVICE_UNAVAILABLE");
  expect(codeOf(viaPool)).toBe("SERVICE_UNAVAILABLE");
}, 30_000);

it("a query whose connection the server terminated (a fast shutdown) is SERVICE_UNAVAILABLE", async () => {
  const running = live.$queryRaw`SELECT pg_sleep(10)`.catch((error: unknown) => error);
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    for (let tries = 0; tries < 50; tries++) {
      const { rowCount } = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%'", [application]);
      if (rowCount) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await admin.end();
  }
  const e = await running;
  expect(codeOf(e)).toBe("SERVICE_UNAVAILABLE");
}, 30_000);

it("a transaction that expired while its queries waited for the database is SERVICE_UNAVAILABLE", async () => {
  // PostgreSQL restarting: runWorkflow's transaction outlived its timeout waiting for connections (Prisma's P2028).
  const expired = await live
    .$transaction(
      async (tx) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return tx.run.count();
      },
      { timeout: 100 },
    )
    .catch((error: unknown) => error);
  expect(codeOf(expired)).toBe("SERVICE_UNAVAILABLE");
}, 30_000);

it("other errors stay masked", () => {
  expect(codeOf(new Error("something else"))).not.toBe("SERVICE_UNAVAILABLE");
});
