import type { AppContext } from "../app/app-context.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { GenerationConfigError, loadGenerationConfig } from "./generation-config.ts";
import { ModelRouter } from "./model-router.ts";

const routers = new WeakMap<AppContext, ModelRouter>();

/**
 * The process's model router, built on first use from PROVIDERS_FILE and the
 * environment (see generation-config.ts). A bad configuration is reported on
 * every use as a typed error naming each problem, never as a crash at start.
 */
export function modelRouterFor(app: AppContext): ModelRouter {
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
export async function closeModelRouter(app: AppContext) {
  const router = routers.get(app);
  routers.delete(app);
  await router?.close();
}
