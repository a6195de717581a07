import { createPubSub } from "graphql-yoga";
import type { Redis } from "ioredis";

/**
 * Job and run events travel over Redis pub/sub, so a worker in one process can
 * stream to a subscription served by a gateway in another. This is the
 * EventTarget that graphql-yoga's pub/sub expects, backed by Redis.
 */
function createRedisEventTarget(publisher: Redis, subscriber: Redis, channelPrefix: string): EventTarget {
  const listeners = new Map<string, Set<EventListenerOrEventListenerObject>>();
  subscriber.on("message", (channel: string, message: string) => {
    const type = channel.slice(channelPrefix.length);
    const detail = JSON.parse(message);
    for (const listener of listeners.get(type) ?? []) {
      const event = new CustomEvent(type, { detail });
      if (typeof listener === "function") listener(event);
      else listener.handleEvent(event);
    }
  });
  return {
    addEventListener(type, listener) {
      if (!listener) return;
      let set = listeners.get(type);
      if (!set) {
        set = new Set();
        listeners.set(type, set);
        void subscriber.subscribe(channelPrefix + type);
      }
      set.add(listener);
    },
    removeEventListener(type, listener) {
      const set = listeners.get(type);
      if (!set || !listener) return;
      set.delete(listener);
      if (set.size === 0) {
        listeners.delete(type);
        void subscriber.unsubscribe(channelPrefix + type);
      }
    },
    dispatchEvent(event) {
      void publisher.publish(channelPrefix + event.type, JSON.stringify((event as CustomEvent).detail));
      return true;
    },
  };
}

export type JobEvent = {
  jobId: string;
  status: string;
  progress: number;
  /** A streamed piece of generated text. */
  token?: string;
  message?: string;
  error?: { code: string; message: string } | null;
  at: string;
};

export type RunEvent = {
  runId: string;
  type: string;
  stepId?: string;
  stepKey?: string;
  status?: string;
  message?: string;
  token?: string;
  output?: unknown;
  error?: { code: string; message: string } | null;
  at: string;
};

export type EventBus = ReturnType<typeof createEventBus>;

/** Topics are `job:<id>` and `run:<id>`; payloads are JSON. */
export function createEventBus(publisher: Redis, subscriber: Redis, prefix: string) {
  const eventTarget = createRedisEventTarget(publisher, subscriber, `${prefix}:events:`);
  return createPubSub<{ job: [jobId: string, event: JobEvent]; run: [runId: string, event: RunEvent] }>({
    eventTarget: eventTarget as never,
  });
}
