import { Prisma } from "./database.ts";
import { ErrorCode, TesseraError } from "./errors.ts";

/**
 * Prisma's codes for a server it cannot reach, that timed out or closed the connection, and P2028: a transaction
 * that expired while its queries waited for a connection (the server restarting, or overloaded); retried, it works.
 */
const UNREACHABLE_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2028"]);
/** The pg driver adapter's kinds for the same. */
const UNREACHABLE_ADAPTER_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections"]);
/** SQLSTATE classes 08 (connection exception) and 57P0x (the server shutting down, crashed, starting up). */
const UNAVAILABLE_SQLSTATE = /^(08|57P0)/;
/** The socket errors node-postgres passes on as they are when the server cannot be reached (sql, database.ts). */
const UNREACHABLE_SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE"]);
/** What the pg driver says when the socket goes away between queries (no code to go by). */
const UNAVAILABLE_MESSAGE = /Can't reach database server|Connection terminated|timeout exceeded when trying to connect|terminating connection due to administrator command|the database system is (starting up|shutting down|in recovery mode)/i;

/**
 * A SERVICE_UNAVAILABLE for an error that says PostgreSQL is down, restarting or unreachable (nothing wrong with
 * the request: a client should try again), or undefined for any other error.
 */
export function databaseUnavailable(error: unknown): TesseraError | undefined {
  const seen = new Set<unknown>();
  for (let current = error; current && typeof current === "object" && !seen.has(current); current = (current as { originalError?: unknown; cause?: unknown }).originalError ?? (current as { cause?: unknown }).cause) {
    seen.add(current);
    if (isUnavailable(current)) return new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the database is unavailable; retry later");
  }
  return undefined;
}

function isUnavailable(error: object): boolean {
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    if (UNREACHABLE_PRISMA_CODES.has(error.code)) return true;
    const cause = (error.meta?.driverAdapterError as { cause?: { kind?: string; code?: string } } | undefined)?.cause;
    if (cause?.kind && UNREACHABLE_ADAPTER_KINDS.has(cause.kind)) return true;
    if (cause?.kind === "postgres" && typeof cause.code === "string" && UNAVAILABLE_SQLSTATE.test(cause.code)) return true;
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && UNAVAILABLE_SQLSTATE.test(code) && "severity" in error) return true; // a pg error, unwrapped
  if (typeof code === "string" && UNREACHABLE_SOCKET_CODES.has(code)) return true;
  return (error instanceof Prisma.PrismaClientUnknownRequestError || error instanceof Prisma.PrismaClientRustPanicError || error instanceof Error) &&
    UNAVAILABLE_MESSAGE.test((error as Error).message);
}
