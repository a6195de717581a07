import { Redis, type RedisOptions } from "ioredis";

export type { Redis };

/**
 * A connection for BullMQ and pub/sub. BullMQ needs maxRetriesPerRequest null:
 * blocking commands wait for Redis to come back instead of failing the job.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false, ...options });
}
