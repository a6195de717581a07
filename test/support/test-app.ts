import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createAppContext, type AppContext } from "../../services/app/app-context.ts";
import { createApiKey } from "../../services/core/api-keys.ts";
import { loadConfig } from "../../services/core/config.ts";
import { createLogger } from "../../services/core/logger.ts";
import { createGateway, type Gateway } from "../../services/gateway/gateway.ts";
import { queueNames } from "../../services/queue/job-payloads.ts";
import { startWorkerPool, type WorkerPool, type WorkerPoolOptions } from "../../services/worker/worker-pool.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "./test-env.ts";

export type GraphQLResponse<T = any> = {
  data?: T;
  errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string; [key: string]: unknown } }>;
};

export type TestApp = {
  app: AppContext;
  gateway: Gateway;
  url: string;
  worker?: WorkerPool;
  /** A new project with its own key. */
  createProject(name?: string): Promise<{ key: string; projectId: string }>;
  graphql<T = any>(query: string, variables?: Record<string, unknown>, key?: string): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
};

/**
 * A real gateway (and optionally worker) on a random port, against the real
 * test database and Redis. Each instance has its own queue prefix and data
 * folder, so test files running side by side never see each other's jobs.
 * `noModels`: an empty models folder (inside the data folder), so a text asset
 * becomes READY without encoder weights, whatever models a checkout has.
 */
export async function startTestApp(
  options: { worker?: boolean | WorkerPoolOptions; env?: Record<string, string>; noModels?: boolean } = {},
): Promise<TestApp> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-test-"));
  const noModelsDir = path.join(dataDir, "no-models");
  if (options.noModels) await fs.mkdir(noModelsDir);
  const config = loadConfig({
    ...process.env,
    NODE_ENV: "test",
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    DATA_DIR: dataDir,
    QUEUE_PREFIX: `test-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...(options.noModels ? { MODELS_DIR: noModelsDir } : {}),
    ...options.env,
  });
  const app = await createAppContext(config, createLogger(config.LOG_LEVEL, "test"));
  const gateway = createGateway(app);
  const address = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${address.port}/graphql`;
  const worker = options.worker
    ? startWorkerPool(app, typeof options.worker === "object" ? options.worker : {})
    : undefined;

  return {
    app,
    gateway,
    url,
    worker,
    async createProject(name = `project-${randomUUID()}`) {
      const { key, project } = await createApiKey(app.db, name);
      return { key, projectId: project.id };
    },
    async graphql(query, variables, key) {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as GraphQLResponse;
    },
    async close() {
      await worker?.close();
      await gateway.close();
      if (app.redis.status === "ready")
        await Promise.all(queueNames.map((name) => app.queues.queue(name).obliterate({ force: true }).catch(() => {})));
      await app.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
