import type { YogaInitialContext } from "graphql-yoga";
import type { AppContext } from "../app/app-context.ts";
import type { Project } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

/** What every resolver sees: the process's resources and the caller's project. */
export type ServerContext = {
  app: AppContext;
  /** Null when the request carried no valid API key; only `health` allows that. */
  project: Project | null;
};

export type GatewayContext = YogaInitialContext & ServerContext;

/** The caller's project; every scoped operation starts here. */
export function requireProject(context: Pick<GatewayContext, "project">): Project {
  if (!context.project) {
    throw new TesseraError(ErrorCode.UNAUTHENTICATED, "a valid API key is required: send `Authorization: Bearer <key>`");
  }
  return context.project;
}
