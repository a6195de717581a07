import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { GenerationConfigError, loadGenerationConfig } from "./generation-config.ts";
import { ModelRouter } from "./model-router.ts";

/** What a router is built from: the process's models folder and its logger (an AppContext is one). */
export type RouterHost = { config: Pick<Config, "modelsDir">; logger: Logger };

const routers = new WeakMap<RouterHost, ModelRouter>();

/**
 * The process's model router, built on first use from PROVIDERS_FILE and the
 * environment (see generation-config.ts). A bad configuration is reported on
 * every use as a typed error naming each problem, never as a crash at start.
 */
export function modelRouterFor(app: RouterHost): ModelRouter {
  let router = routers.get(app);
  if (!router) {
    try {
      router = new ModelRouter(loadGenerationConfig(process.env), { modelsDir: app.config.modelsDir, logger: app.logger.child({ component: "generation" }) });
    } catch (error) {
      if (error instanceof GenerationConfigError) throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, error.message, { problems: error.problems });
      throw error;
    }
    routers.set(app, router);
  }
  return router;
}

/** Frees loaded local pipelines (tests and shutdown). */
export async function closeModelRouter(app: RouterHost) {
  const router = routers.get(app);
  routers.delete(app);
  await router?.close();
}
