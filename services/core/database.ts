import { PrismaPg } from "@prisma/adapter-pg";
import { Prisma, PrismaClient } from "../../generated/prisma/client.ts";

export type Database = PrismaClient;
export * from "../../generated/prisma/client.ts";

/** One Prisma client over node-postgres; connect failures surface fast instead of hanging. */
export function createDatabase(databaseUrl: string): Database {
  const adapter = new PrismaPg({ connectionString: databaseUrl, connectionTimeoutMillis: 3000, max: 10 });
  return new PrismaClient({ adapter });
}

/**
 * A statement's time as PostgreSQL stores Prisma's DateTime (`timestamp(3)`, UTC wall time), for the
 * few hot-path writes that are raw SQL: `now()` alone would follow the session's TimeZone.
 */
export const SQL_UTC_NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

/**
 * Why a write failed, whether it came from Prisma's model API (P2002, P2003) or from a raw statement
 * (P2010, carrying PostgreSQL's own code).
 */
export function constraintViolation(error: unknown): "unique" | "foreign-key" | undefined {
  if (!(error instanceof Prisma.PrismaClientKnownRequestError)) return undefined;
  if (error.code === "P2002") return "unique";
  if (error.code === "P2003") return "foreign-key";
  if (error.code !== "P2010") return undefined;
  const cause = (error.meta as { driverAdapterError?: { cause?: { originalCode?: string } } } | undefined)?.driverAdapterError?.cause;
  if (cause?.originalCode === "23505") return "unique";
  if (cause?.originalCode === "23503") return "foreign-key";
  return undefined;
}
