import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../../generated/prisma/client.ts";

export type Database = PrismaClient;
export * from "../../generated/prisma/client.ts";

/** One Prisma client over node-postgres; connect failures surface fast instead of hanging. */
export function createDatabase(databaseUrl: string): Database {
  const adapter = new PrismaPg({ connectionString: databaseUrl, connectionTimeoutMillis: 3000, max: 10 });
  return new PrismaClient({ adapter });
}
