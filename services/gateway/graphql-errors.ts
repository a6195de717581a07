import { GraphQLError } from "graphql";
import { maskError as maskUnexpectedError } from "graphql-yoga";
import { databaseUnavailable } from "../core/database-errors.ts";
import { TesseraError } from "../core/errors.ts";

/**
 * How errors look on the wire. Services throw plain TesseraErrors; here, at
 * the gateway's edge, one becomes a GraphQL error with `extensions.code` (and
 * `details`), wherever it was thrown: a resolver, a subscription, a plugin,
 * the upload parser. Everything else is masked as "Unexpected error.".
 */

/** The TesseraError an error carries: itself, or one down its `originalError` chain (graphql-js wraps what resolvers throw). */
export function tesseraErrorIn(error: unknown): TesseraError | undefined {
  const seen = new Set<unknown>();
  for (let current = error; current && !seen.has(current); current = (current as { originalError?: unknown }).originalError) {
    if (current instanceof TesseraError) return current;
    seen.add(current);
  }
  return undefined;
}

/**
 * A TesseraError as a GraphQL error, at the place `located` (the wrapper
 * graphql-js made, if any) points to. No `originalError`: the result is
 * whole, and yoga answers it with 200 like any error the client caused.
 */
export function toGraphQLError(error: TesseraError, located?: GraphQLError): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: located?.nodes,
    source: located?.source,
    positions: located?.positions,
    path: located?.path,
    extensions: { code: error.code, ...(error.details ? { details: error.details } : {}) },
  });
}

/**
 * yoga's `maskedErrors.maskError`: TesseraErrors keep their code and message; PostgreSQL down or restarting is a
 * SERVICE_UNAVAILABLE the client retries; anything else says "Unexpected error.".
 */
export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const tessera = tesseraErrorIn(error) ?? databaseUnavailable(error);
  if (tessera) return toGraphQLError(tessera, error instanceof GraphQLError ? error : undefined);
  return maskUnexpectedError(error, message, isDev);
}

/** Errors the client caused: yoga logs every error it maps, and these are not the server's fault. */
export function isClientError(error: unknown): boolean {
  return tesseraErrorIn(error) !== undefined;
}
