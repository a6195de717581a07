import { createAppContext, type AppContext } from "./app-context.ts";
import { loadDotEnv } from "./command-line.ts";
import { ConfigError, loadConfig } from "../core/config.ts";
import { checkDependencies, DependencyUnavailableError } from "../core/dependency-check.ts";
import { createLogger, logDestination } from "../core/logger.ts";
import { applyMigrations } from "../core/migrate.ts";
import { startTracing, stopTracing } from "../observability/tracing.ts";
import { redactSecrets, rememberSecretsOf } from "../core/secret-redaction.ts";

type Running = { close(): Promise<void> };

/**
 * Runs one Tessera process: read .env, validate config, check PostgreSQL and Redis (and
 * say how to start them if they are down), optionally migrate, start, and shut
 * down cleanly on SIGTERM/SIGINT.
 */
export async function runProcess(
  name: string,
  start: (app: AppContext) => Promise<Running>,
  options: { migrate?: boolean } = {},
) {
  // .env in the working directory fills in what the environment leaves unset.
  loadDotEnv();
  // Secret values of this environment are known before anything can print or log them.
  rememberSecretsOf(process.env);
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL, name, logDestination(config.LOG_FORMAT));
  try {
    await checkDependencies(config);
    if (options.migrate) {
      await applyMigrations(config.DATABASE_URL);
      logger.info("database migrations are applied");
    }
  } catch (error) {
    if (error instanceof DependencyUnavailableError) {
      logger.fatal(error.message);
      console.error(error.message);
      process.exit(69); // EX_UNAVAILABLE
    }
    // A failed migration prints Prisma's output: it goes out scrubbed, never as an uncaught error with the raw text.
    logger.fatal({ err: error }, "could not prepare the database");
    console.error(redactSecrets(`could not prepare the database: ${error instanceof Error ? error.message : String(error)}`));
    process.exit(1);
  }

  // Before anything that makes spans or queues jobs: on only with OTEL_EXPORTER_OTLP_ENDPOINT.
  if (await startTracing(config, name)) logger.info({ endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT }, "tracing to OTLP");
  const app = await createAppContext(config, logger);
  // Signal handlers go in before start(): a process says it has started from
  // inside start(), and a SIGTERM sent on that line must drain, not kill it.
  let running: Running | undefined;
  let stopRequested: string | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    if (!running) {
      stopRequested = signal; // acted on once start() returns
      return;
    }
    stopping = true;
    logger.info({ signal }, "shutting down: draining work and closing connections");
    const forceExit = setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, 30_000).unref();
    try {
      await running.close();
      await app.close();
      await stopTracing().catch((error: unknown) => logger.warn({ err: error }, "could not send the last spans"));
      clearTimeout(forceExit);
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));

  try {
    running = await start(app);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    logger.fatal({ err: error }, `could not start: ${message}`);
    console.error(redactSecrets(`could not start: ${message}`));
    await app.close().catch(() => {});
    process.exit(1);
  }
  if (stopRequested) await stop(stopRequested);
}
