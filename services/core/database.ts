import { createHash } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { Prisma, PrismaClient } from "../../generated/prisma/client.ts";

export type Database = PrismaClient;
export * from "../../generated/prisma/client.ts";

/** The node-postgres pool under each client createDatabase made (see sql). */
const pools = new WeakMap<Database, pg.Pool>();

/** One Prisma client over node-postgres; connect failures surface fast instead of hanging. */
export function createDatabase(databaseUrl: string): Database {
  const pool = new pg.Pool({ connectionString: databaseUrl, connectionTimeoutMillis: 3000, max: 10 });
  // An idle connection the server closed: the pool drops it and the next query connects anew (Prisma only listens once connected).
  pool.on("error", () => {});
  const db = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  pools.set(db, pool);
  return db;
}

/** PostgreSQL's `timestamp` (no zone) holds UTC wall time, as Prisma writes and reads DateTime; pg alone would read it as local time. */
const UTC_TIMESTAMPS = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.TIMESTAMP ? (value: string) => new Date(`${value.replace(" ", "T")}Z`) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * One statement straight on the client's node-postgres pool, for the few per-request statements of the hot paths
 * (a search's hit rows, an upload's quota check and rows): Prisma's engine spends about 1-3 ms of the event loop on
 * each call, raw ones included (bench/README.md, search and ingest). Rows come back as `$queryRaw` gives them
 * (timestamps as UTC Dates); a database error is node-postgres' own (constraintViolation and databaseUnavailable read
 * it). A client not made by createDatabase (or disconnected) runs it through Prisma.
 *
 * `name` makes it a prepared statement, parsed and planned once per connection, for one run on every request (a
 * search's rows). It must name its columns: a prepared `*` changes its result when a migration adds a column, and
 * PostgreSQL then refuses to run it ("cached plan must not change result type").
 */
export async function sql<Row>(db: Database, text: string, values: unknown[], name?: string): Promise<Row[]> {
  const pool = pools.get(db);
  if (!pool || pool.ending || pool.ended) return db.$queryRawUnsafe<Row[]>(text, ...values);
  const result = await pool.query<Row & pg.QueryResultRow>({ name, text, values, types: UTC_TIMESTAMPS });
  return result.rows;
}

/**
 * A prepared statement's name for a statement whose text is built from parts (with or without a column, a
 * caller's SQL): one name per text, so that one connection never gets two texts under one name. The texts are
 * the code's own (values are parameters), so the names are few.
 */
export function preparedName(prefix: string, text: string) {
  let name = preparedNames.get(text);
  if (!name) {
    name = `${prefix}_${createHash("sha1").update(text).digest("hex").slice(0, 12)}`;
    preparedNames.set(text, name);
  }
  return name;
}
const preparedNames = new Map<string, string>();

/**
 * A statement's time as PostgreSQL stores Prisma's DateTime (`timestamp(3)`, UTC wall time), for the
 * few hot-path writes that are raw SQL: `now()` alone would follow the session's TimeZone.
 */
export const UTC_NOW = "(now() AT TIME ZONE 'UTC')";
/** UTC_NOW as a fragment of a statement sent through Prisma. */
export const SQL_UTC_NOW = Prisma.raw(UTC_NOW);

/**
 * Why a write failed, whether it came from Prisma's model API (P2002, P2003), a raw statement through Prisma
 * (P2010, carrying PostgreSQL's own code) or one through `sql` (node-postgres' error, PostgreSQL's code).
 */
export function constraintViolation(error: unknown): "unique" | "foreign-key" | undefined {
  if (error instanceof pg.DatabaseError) return error.code === "23505" ? "unique" : error.code === "23503" ? "foreign-key" : undefined;
  if (!(error instanceof Prisma.PrismaClientKnownRequestError)) return undefined;
  if (error.code === "P2002") return "unique";
  if (error.code === "P2003") return "foreign-key";
  if (error.code !== "P2010") return undefined;
  const cause = (error.meta as { driverAdapterError?: { cause?: { originalCode?: string } } } | undefined)?.driverAdapterError?.cause;
  if (cause?.originalCode === "23505") return "unique";
  if (cause?.originalCode === "23503") return "foreign-key";
  return undefined;
}
