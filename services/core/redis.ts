import { Redis, type RedisOptions } from "ioredis";

export type { Redis };

/**
 * A connection for BullMQ workers and pub/sub. BullMQ needs maxRetriesPerRequest null:
 * blocking commands wait for Redis to come back instead of failing the job.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false, ...options });
}

/**
 * A connection for calls made while a request waits (adding jobs): while Redis is
 * disconnected a command fails at once instead of waiting in ioredis' offline queue,
 * and one that was in flight when the connection dropped is retried once, so the
 * caller can answer SERVICE_UNAVAILABLE instead of holding the request (and its upload).
 */
export function createRequestRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false, ...options });
}
