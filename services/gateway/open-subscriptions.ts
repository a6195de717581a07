import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { liveKeyHashes } from "../core/api-keys.ts";
import type { Database } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";

export type OpenSubscriptionsOptions = {
  /** Open subscriptions one project may hold, over SSE and graphql-ws, across every gateway sharing the Redis. */
  maxPerProject: number;
  /** How often the keys behind open subscriptions are checked for revocation (and their Redis leases renewed). */
  recheckMs: number;
  /** Called with each key hash found revoked, so the key cache forgets it too. */
  onRevoked?: (keyHash: string) => void;
};

/** One open subscription: ended from outside when its key is revoked. */
export type SubscriptionSlot = {
  /** Gives the place back; safe to call twice. */
  close(): void;
  /** Called (once) when the subscription must end, with the error to end it with. */
  onEnd(listener: (error: TesseraError) => void): void;
};

/**
 * Places given back within this many ms go to Redis together: one ZREM per project, all in one write, instead of a
 * command (and a write system call) for every subscription that ends, and jobs end many at a time. A place given
 * back stays taken for other gateways at most this long; this gateway's next open of the project removes it first.
 */
export const RELEASE_BATCH_MS = 50;

type Entry = { member: string; projectId: string; keyHash: string; end?: (error: TesseraError) => void; closed: boolean };

/**
 * Takes a place only if fewer than `limit` unexpired leases remain, atomically, so two gateways never both take
 * the last one. Leases, not a bare counter: a gateway that dies without giving its places back loses them when
 * they expire, instead of holding them forever. ARGV from the sixth on: places this gateway gave back and has not
 * sent yet (see RELEASE_BATCH_MS), removed first, so a place given back here is free to the next open at once.
 */
const TAKE_PLACE = `
for i = 6, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;
const TAKE_PLACE_COMMAND = "tesseraTakeSubscriptionPlace";
type PlaceTakingRedis = { [TAKE_PLACE_COMMAND](keyCount: 1, key: string, ...args: Array<string | number>): Promise<unknown> };

/**
 * The subscriptions this gateway holds open: a cap per project, counted in
 * Redis across gateways, and an end for those whose key is revoked. One timer
 * per process (not per subscription) checks every key behind an open
 * subscription in one query, every `recheckMs` (the key cache's time to live,
 * so a revoked key loses its subscriptions no later than its requests), and
 * renews this gateway's leases in the same beat.
 */
export class OpenSubscriptions {
  private readonly byKey = new Map<string, Set<Entry>>();
  private readonly instance = randomUUID();
  private readonly leaseMs: number;
  private timer?: NodeJS.Timeout;
  private checking = false;
  private count = 0;
  /** Places given back and not sent yet, by Redis key. */
  private releasing = new Map<string, string[]>();
  private releaseTimer?: NodeJS.Timeout;

  constructor(
    private readonly deps: { redis: Redis; db: Database; logger: Logger; prefix: string },
    private readonly options: OpenSubscriptionsOptions,
  ) {
    // Renewed every beat; three beats (at least 30 s) of slack before a dead gateway's places come free.
    this.leaseMs = Math.max(30_000, 3 * options.recheckMs);
    // Sent by its SHA, the text at most once per connection, instead of the whole script with every subscription.
    deps.redis.defineCommand(TAKE_PLACE_COMMAND, { lua: TAKE_PLACE });
  }

  /** Takes one of the project's places, or throws QUOTA_EXCEEDED. */
  async open(projectId: string, keyHash: string): Promise<SubscriptionSlot> {
    const member = `${this.instance}:${++this.count}`;
    const now = Date.now();
    const key = this.redisKey(projectId);
    // This project's places given back and not sent yet go with the script (and, if it fails, lapse with their leases).
    const released = this.releasing.get(key) ?? [];
    this.releasing.delete(key);
    let taken: unknown;
    try {
      const redis = this.deps.redis as unknown as PlaceTakingRedis;
      taken = await redis[TAKE_PLACE_COMMAND](1, key, now, this.options.maxPerProject, now + this.leaseMs, member, this.leaseMs, ...released);
    } catch (error) {
      this.deps.logger.warn({ err: error }, "could not count open subscriptions in Redis");
      throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "subscriptions are unavailable for a moment: try again shortly");
    }
    if (taken !== 1) {
      throw new TesseraError(
        ErrorCode.QUOTA_EXCEEDED,
        `this project already has ${this.options.maxPerProject} open subscriptions, the most allowed: end one first`,
        { limit: this.options.maxPerProject, variable: "MAX_SUBSCRIPTIONS_PER_KEY" },
      );
    }
    const entry: Entry = { member, projectId, keyHash, closed: false };
    let set = this.byKey.get(keyHash);
    if (!set) this.byKey.set(keyHash, (set = new Set()));
    set.add(entry);
    this.startTimer();
    return {
      close: () => this.close(entry),
      onEnd: (listener) => {
        entry.end = listener;
      },
    };
  }

  /** Stops the timer and sends the places given back; the places held lapse with their leases (or are closed by their streams). */
  dispose() {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sendReleases();
  }

  private close(entry: Entry) {
    if (entry.closed) return;
    entry.closed = true;
    const set = this.byKey.get(entry.keyHash);
    set?.delete(entry);
    if (set?.size === 0) this.byKey.delete(entry.keyHash);
    if (this.byKey.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    const key = this.redisKey(entry.projectId);
    const members = this.releasing.get(key);
    if (members) members.push(entry.member);
    else this.releasing.set(key, [entry.member]);
    this.releaseTimer ??= setTimeout(() => this.sendReleases(), RELEASE_BATCH_MS);
  }

  /** One ZREM per project, in one pipeline (every Tessera key shares QUEUE_PREFIX's slot on a cluster). */
  private sendReleases() {
    clearTimeout(this.releaseTimer);
    this.releaseTimer = undefined;
    if (this.releasing.size === 0) return;
    const pipeline = this.deps.redis.pipeline();
    for (const [key, members] of this.releasing) pipeline.zrem(key, ...members);
    this.releasing.clear();
    void pipeline.exec().catch(() => {}); // else the leases lapse
  }

  private startTimer() {
    if (this.timer) return;
    this.timer = setInterval(() => void this.beat(), this.options.recheckMs);
    this.timer.unref();
  }

  private async beat() {
    if (this.checking) return;
    this.checking = true;
    try {
      await this.endRevoked();
      await this.renewLeases();
    } catch (error) {
      this.deps.logger.warn({ err: error }, "checking the keys of open subscriptions failed");
    } finally {
      this.checking = false;
    }
  }

  private async endRevoked() {
    const hashes = [...this.byKey.keys()];
    const live = await liveKeyHashes(this.deps.db, hashes);
    for (const hash of hashes) {
      if (live.has(hash)) continue;
      this.options.onRevoked?.(hash);
      for (const entry of [...(this.byKey.get(hash) ?? [])]) {
        entry.end?.(new TesseraError(ErrorCode.UNAUTHENTICATED, "the API key of this subscription was revoked"));
        this.close(entry);
      }
    }
  }

  private async renewLeases() {
    if (this.byKey.size === 0) return;
    const expires = Date.now() + this.leaseMs;
    const pipeline = this.deps.redis.pipeline();
    for (const set of this.byKey.values()) {
      for (const entry of set) pipeline.zadd(this.redisKey(entry.projectId), "XX", expires, entry.member);
    }
    for (const projectId of new Set([...this.byKey.values()].flatMap((set) => [...set].map((entry) => entry.projectId)))) {
      pipeline.pexpire(this.redisKey(projectId), this.leaseMs);
    }
    await pipeline.exec();
  }

  private redisKey(projectId: string) {
    return `${this.deps.prefix}:subscriptions:${projectId}`;
  }
}
