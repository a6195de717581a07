import type { YogaInitialContext } from "graphql-yoga";
import type { AppContext } from "../app/app-context.ts";
import type { ApiKeyScope } from "../core/api-keys.ts";
import type { Project } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

/**
 * What every resolver sees: the process's resources and the caller's project.
 * A new one per request, which is what keeps schema/'s dataloaders per request:
 * Pothos keys them on this object, so no cached row outlives its request or
 * reaches another caller.
 */
export type ServerContext = {
  app: AppContext;
  /** Null when the request carried no valid API key; only `health` allows that. */
  project: Project | null;
  /** The hash of the caller's key, null without one: what a revocation ends subscriptions by. */
  apiKeyHash: string | null;
  /** What the caller's key may do (read, write, admin); empty without a key. Optional for contexts built by hand. */
  apiKeyScopes?: readonly ApiKeyScope[];
  /** The caller's key's id, null without one. */
  apiKeyId?: string | null;
  /** Drops a revoked key from this gateway's key cache, so it stops working here at once. */
  forgetApiKey?: (keyHash: string) => void;
};

export type GatewayContext = YogaInitialContext & ServerContext;

/** The context of a field behind the `project` scope (schema/builder.ts): the caller has a valid key. */
export type ProjectContext = GatewayContext & { project: Project };

/** What a caller without a valid key gets, from the `project` scope and from `requireProject` alike. */
export function missingApiKeyError(): TesseraError {
  return new TesseraError(ErrorCode.UNAUTHENTICATED, "a valid API key is required: send `Authorization: Bearer <key>`");
}

/** A key without the scope an operation needs (`read` for queries and subscriptions, `write` for mutations, `admin` for keys). */
export function missingScopeError(scope: string): TesseraError {
  return new TesseraError(ErrorCode.FORBIDDEN, `this API key lacks the \`${scope}\` scope this needs; use a key that has it (see \`keys\`)`, { scope });
}

/** The caller's project, for code the `project` scope does not guard (the dataloaders' batch functions). */
export function requireProject(context: Pick<GatewayContext, "project">): Project {
  if (!context.project) throw missingApiKeyError();
  return context.project;
}
