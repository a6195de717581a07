import { createPubSub } from "graphql-yoga";
import type { Redis } from "ioredis";

/**
 * Job and run events travel over Redis pub/sub, so a worker in one process can
 * stream to a subscription served by a gateway in another. This is the
 * EventTarget that graphql-yoga's pub/sub expects, backed by Redis. Sharded
 * pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7): on a Redis Cluster one node carries
 * a topic's events, so they arrive in the order they were sent (a run's last
 * step before its end); plain PUBLISH crosses the cluster bus from whichever
 * node took it, in no set order.
 *
 * Events a tick publishes on one channel go out as one SPUBLISH (a JSON array when
 * there are several, the event itself when one): a job's start releases its RUNNING
 * event and the tokens held behind its commit together, and its end its last tokens
 * and SUCCEEDED. Each SPUBLISH is a write system call and one message for every
 * subscriber, and on a loaded machine the commands, more than the JavaScript, were
 * a short job's cost (bench/README.md, generation). Order within a channel is kept.
 * The tick's SPUBLISHes of several channels go out as one pipeline: one write for all
 * (on a Redis Cluster, one per slot; bySlot below). A connection's commands reach Redis
 * in the order they were written, so each channel's order holds across ticks too.
 */
/** How long a channel nobody listens to any more stays subscribed, so that the channels of jobs ending together leave in one command. */
export const UNSUBSCRIBE_BATCH_MS = 50;

function createRedisEventTarget(publisher: Redis, subscriber: Redis, channelPrefix: string) {
  const listeners = new Map<string, Set<EventListenerOrEventListenerObject>>();
  /** Each channel's SUBSCRIBE, settled once Redis has confirmed it: from then on no event on it is missed. */
  const subscribed = new Map<string, Promise<unknown>>();
  /**
   * Channels whose last listener left, unsubscribed together every UNSUBSCRIBE_BATCH_MS: each watched job costs an
   * SSUBSCRIBE and an SUNSUBSCRIBE, and jobs end many at a time. A channel listened to again before then is simply
   * kept. On a Redis Cluster one SUNSUBSCRIBE takes channels of one slot only, so there each goes at once.
   */
  const leaving = new Set<string>();
  let leaveTimer: NodeJS.Timeout | undefined;
  /**
   * Channels first listened to in this tick, subscribed together in one SSUBSCRIBE when it ends: a `jobsEvents` of
   * many jobs, or many watches starting at once, cost one command and one write, not one each. Each channel's
   * `subscribed` settles when Redis has confirmed them all. On a Redis Cluster each goes at once, as it leaves.
   */
  let joining: Map<string, (confirmed: Promise<unknown>) => void> | undefined;
  const subscribeJoining = () => {
    const batch = joining!;
    joining = undefined;
    const confirmed = subscriber.ssubscribe(...[...batch.keys()].map((type) => channelPrefix + type)).catch(() => undefined);
    for (const settle of batch.values()) settle(confirmed);
  };
  /** A channel's SSUBSCRIBE, settled once confirmed. A failed one (Redis down) leaves the watchers' database backstop; it is not thrown at them. */
  const subscribeSoon = (type: string): Promise<unknown> => {
    if (subscriber.isCluster) return subscriber.ssubscribe(channelPrefix + type).catch(() => undefined);
    if (!joining) {
      joining = new Map();
      queueMicrotask(subscribeJoining);
    }
    const batch = joining;
    return new Promise((resolve) => batch.set(type, resolve));
  };
  const unsubscribeLeaving = () => {
    leaveTimer = undefined;
    const types = [...leaving];
    leaving.clear();
    for (const type of types) subscribed.delete(type);
    if (types.length) void subscriber.sunsubscribe(...types.map((type) => channelPrefix + type)).catch(() => undefined);
  };
  subscriber.on("smessage", (channel: string, message: string) => {
    const type = channel.slice(channelPrefix.length);
    const parsed: unknown = JSON.parse(message);
    // An event is an object; an array is several events of one tick, in the order they were published.
    for (const detail of Array.isArray(parsed) ? parsed : [parsed]) {
      for (const listener of listeners.get(type) ?? []) {
        const event = new CustomEvent(type, { detail });
        if (typeof listener === "function") listener(event);
        else listener.handleEvent(event);
      }
    }
  });
  /** Events published in this tick and not yet sent, by channel (see above). */
  let outgoing: Map<string, unknown[]> | undefined;
  const flush = () => {
    const batches = outgoing!;
    outgoing = undefined;
    const message = (channel: string) => {
      const details = batches.get(channel)!;
      return JSON.stringify(details.length === 1 ? details[0] : details);
    };
    // One message per channel; the channels of one slot together, as one pipeline (one write, see above).
    for (const group of publisher.isCluster ? bySlot(batches.keys()) : [[...batches.keys()]]) {
      // On a cluster a lone one is a pipeline too: before the cluster is ready, pipelines and plain commands wait in
      // different queues, and a channel's order across ticks must not depend on which one drains first.
      if (group.length === 1 && !publisher.isCluster) {
        void publisher.spublish(group[0]!, message(group[0]!)).catch(() => undefined);
        continue;
      }
      const pipeline = publisher.pipeline();
      for (const channel of group) pipeline.spublish(channel, message(channel));
      void pipeline.exec().catch(() => undefined);
    }
  };
  const target: EventTarget = {
    addEventListener(type, listener) {
      if (!listener) return;
      let set = listeners.get(type);
      if (!set) {
        set = new Set();
        listeners.set(type, set);
        // Still subscribed (its unsubscription not sent yet): kept, with the SUBSCRIBE it had.
        if (!leaving.delete(type)) subscribed.set(type, subscribeSoon(type));
      }
      set.add(listener);
    },
    removeEventListener(type, listener) {
      const set = listeners.get(type);
      if (!set || !listener) return;
      set.delete(listener);
      if (set.size === 0) {
        listeners.delete(type);
        if (subscriber.isCluster) {
          subscribed.delete(type);
          void subscriber.sunsubscribe(channelPrefix + type).catch(() => undefined);
          return;
        }
        leaving.add(type);
        leaveTimer ??= setTimeout(unsubscribeLeaving, UNSUBSCRIBE_BATCH_MS).unref();
      }
    },
    dispatchEvent(event) {
      if (!outgoing) {
        outgoing = new Map();
        queueMicrotask(flush);
      }
      const channel = channelPrefix + event.type;
      const details = outgoing.get(channel);
      if (details) details.push((event as CustomEvent).detail);
      else outgoing.set(channel, [(event as CustomEvent).detail]);
      return true;
    },
  };
  return { target, whenSubscribed: (type: string) => subscribed.get(type) ?? Promise.resolve() };
}

/**
 * Channels grouped so that each group's share a Redis Cluster slot, which a pipeline's commands must: by hash tag
 * (the first `{...}` with something in it, which is all that Redis hashes), a channel without one on its own.
 * Tessera's all share one: every key and channel starts with QUEUE_PREFIX, a hash tag in cluster mode.
 */
function bySlot(channels: Iterable<string>): string[][] {
  const groups = new Map<string, string[]>();
  for (const channel of channels) {
    const open = channel.indexOf("{");
    const close = open < 0 ? -1 : channel.indexOf("}", open + 1);
    const hashed = close > open + 1 ? channel.slice(open + 1, close) : `\u0000${channel}`;
    const group = groups.get(hashed);
    if (group) group.push(channel);
    else groups.set(hashed, [channel]);
  }
  return [...groups.values()];
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
  const { target, whenSubscribed } = createRedisEventTarget(publisher, subscriber, `${prefix}:events:`);
  const pubSub = createPubSub<{ job: [jobId: string, event: JobEvent]; run: [runId: string, event: RunEvent] }>({
    eventTarget: target as never,
  });
  return Object.assign(pubSub, {
    /**
     * Settles once Redis confirms the subscription to a topic (started by the first `next()` of
     * `subscribe(topic, id)`): a row read after this misses no event, a row read before it can.
     */
    whenSubscribed: (topic: "job" | "run", id: string) => whenSubscribed(`${topic}:${id}`),
  });
}
