import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { Config } from "./config.ts";

export type { Redis };

/**
 * Where Redis is: a `redis://` URL, or (REDIS_CLUSTER_NODES set) a Redis Cluster reached through those seeds, the
 * URL then giving only the user, password and TLS. A plain URL string still works for a single node.
 */
export type RedisAddress = string | Pick<Config, "REDIS_URL" | "REDIS_CLUSTER_NODES">;

/**
 * One connection to `address` with `options`. A cluster is an ioredis `Cluster`, typed as `Redis`: it answers the same
 * commands, events, `status`, `duplicate()` and `quit()`, and BullMQ and rate-limiter-flexible take either. Multi-key
 * commands need their keys in one slot: every Tessera key starts with QUEUE_PREFIX, a hash tag in cluster mode.
 */
function connect(address: RedisAddress, options: RedisOptions, clusterOptions: { shardedSubscribers?: boolean } = {}): Redis {
  if (typeof address === "string") return new Redis(address, options);
  if (address.REDIS_CLUSTER_NODES.length === 0) return new Redis(address.REDIS_URL, options);
  const url = new URL(address.REDIS_URL);
  // The cluster queues commands until it is ready whatever `enableOfflineQueue` says: without that queue ioredis'
  // own ready check (CLUSTER INFO on a node still connecting) fails and the cluster never becomes ready. A request
  // still waits at most QUEUE_ADD_TIMEOUT_MS for its job to be added (services/queue/job-queues.ts).
  const { lazyConnect, enableOfflineQueue: _offlineQueue, ...nodeOptions } = options;
  const cluster = new Cluster(
    address.REDIS_CLUSTER_NODES.map((node) => {
      const at = node.lastIndexOf(":");
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
    }),
    {
      lazyConnect,
      ...clusterOptions,
      redisOptions: {
        ...nodeOptions,
        username: decodeURIComponent(url.username) || undefined,
        password: decodeURIComponent(url.password) || undefined,
        tls: url.protocol === "rediss:" ? {} : undefined,
      },
    },
  );
  return cluster as unknown as Redis;
}

/**
 * A connection for BullMQ workers and pub/sub. BullMQ needs maxRetriesPerRequest null:
 * blocking commands wait for Redis to come back instead of failing the job.
 */
export function createRedis(address: RedisAddress, options: RedisOptions = {}): Redis {
  return connect(address, { maxRetriesPerRequest: null, lazyConnect: false, ...options });
}

/**
 * The connection that receives job and run events (services/queue/event-bus.ts). Events travel by sharded pub/sub
 * (SSUBSCRIBE, Redis 7): on a cluster a channel lives on the node that owns its slot, so one topic's events arrive
 * in the order they were published, where plain PUBLISH reaches a subscriber through whichever node took it.
 */
export function createSubscriberRedis(address: RedisAddress): Redis {
  return connect(address, { maxRetriesPerRequest: null, lazyConnect: false }, { shardedSubscribers: true });
}

/**
 * A connection for calls made while a request waits (adding jobs): while Redis is
 * disconnected a command fails at once instead of waiting in ioredis' offline queue,
 * and one that was in flight when the connection dropped is retried once, so the
 * caller can answer SERVICE_UNAVAILABLE instead of holding the request (and its upload).
 */
export function createRequestRedis(address: RedisAddress, options: RedisOptions = {}): Redis {
  return connect(address, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false, ...options });
}
