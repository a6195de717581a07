import path from "node:path";
import { LocalDiskBlobStore, type BlobStore } from "../assets/blob-store.ts";
import { createEventBus, type EventBus } from "../queue/event-bus.ts";
import { JobQueues } from "../queue/job-queues.ts";
import { instrumentVectorStore } from "../observability/instruments.ts";
import { queueTelemetry } from "../observability/tracing.ts";
import { createVectorStore } from "../search/create-vector-store.ts";
import type { VectorStore } from "../search/vector-store.ts";
import { closeModelRouter } from "../generation/app-model-router.ts";
import { createModelRuntime, type LocalModelRuntime } from "../models/local-model-runtime.ts";
import { RemoteModelClient } from "../models/remote-model-calls.ts";
import type { Config } from "../core/config.ts";
import { createDatabase, type Database } from "../core/database.ts";
import { createLogger, type Logger } from "../core/logger.ts";
import { createRedis, createRequestRedis, createSubscriberRedis, type Redis } from "../core/redis.ts";

/** The long-lived resources one process shares: gateway, worker, or both. */
export type AppContext = {
  config: Config;
  logger: Logger;
  db: Database;
  /** BullMQ workers, remote model calls, events: waits for Redis to come back (BullMQ's workers need that). */
  redis: Redis;
  /** The producers' connection (`queues`): fails fast while Redis is down, so a request answers SERVICE_UNAVAILABLE. */
  redisRequests: Redis;
  /** Pub/sub needs a connection of its own: a subscribed connection can do nothing else. */
  redisSubscriber: Redis;
  events: EventBus;
  queues: JobQueues;
  blobs: BlobStore;
  vectorStore: VectorStore;
  /** Encoders, OCR, VAD: nothing loads until first use. */
  models: LocalModelRuntime;
  close(): Promise<void>;
};

export async function createAppContext(config: Config, logger = createLogger(config.LOG_LEVEL)): Promise<AppContext> {
  const db = createDatabase(config.DATABASE_URL);
  const redis = createRedis(config);
  const redisSubscriber = createSubscriberRedis(config);
  const redisRequests = createRequestRedis(config);
  // Its errors reach the callers of enqueue; unhandled, ioredis would print each failed reconnect.
  redisRequests.on("error", () => {});
  const queues = new JobQueues(redisRequests, { prefix: config.QUEUE_PREFIX, addTimeoutMs: config.QUEUE_ADD_TIMEOUT_MS, telemetry: queueTelemetry() });
  // Every call timed (tessera_vector_store_duration_seconds) and traced (services/observability).
  const vectorStore = instrumentVectorStore(await createVectorStore(config));
  const remoteModels = new RemoteModelClient(redis, config.QUEUE_PREFIX, config.MODEL_CALL_TIMEOUT_MS);
  const context: AppContext = {
    config,
    logger,
    db,
    redis,
    redisRequests,
    redisSubscriber,
    events: createEventBus(redis, redisSubscriber, config.QUEUE_PREFIX),
    queues,
    blobs: new LocalDiskBlobStore(path.join(config.dataDir)),
    vectorStore,
    models: createModelRuntime({ modelsDir: config.modelsDir, logger, remote: remoteModels, remoteModels: config.REMOTE_MODELS }),
    async close() {
      // With Redis down, a graceful QUIT would wait forever for a reconnect: drop the socket instead.
      if (redis.status === "ready" && redisRequests.status === "ready") {
        await queues.close();
        await redisRequests.quit().catch(() => redisRequests.disconnect());
        await remoteModels.close();
        await redis.quit().catch(() => redis.disconnect());
      } else {
        redis.disconnect();
        redisRequests.disconnect();
        await queues.close().catch(() => {});
        await remoteModels.close().catch(() => {});
      }
      redisSubscriber.disconnect();
      await vectorStore.close();
      await context.models.close();
      await closeModelRouter(context);
      await db.$disconnect();
    },
  };
  return context;
}
