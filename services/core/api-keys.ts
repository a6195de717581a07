import { createHash, randomBytes } from "node:crypto";
import type { Database, Project } from "./database.ts";

const KEY_PREFIX = "tsk_";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** What a key may do: `read` queries and subscriptions, `write` mutations, `admin` list, create and revoke keys. */
export const API_KEY_SCOPES = ["read", "write", "admin"] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/** A new key of a project: the key itself (shown once, never stored) and its row. */
export async function issueApiKey(
  db: Database,
  projectId: string,
  options: { name?: string; scopes?: readonly ApiKeyScope[]; expiresAt?: Date | null } = {},
) {
  const key = KEY_PREFIX + randomBytes(32).toString("base64url");
  const apiKey = await db.apiKey.create({
    data: {
      projectId,
      name: options.name,
      prefix: key.slice(0, 12),
      hash: hashApiKey(key),
      scopes: [...(options.scopes ?? API_KEY_SCOPES)],
      expiresAt: options.expiresAt ?? null,
    },
  });
  return { key, apiKey };
}

/** Creates the project if it is new, and a key for it (every scope unless told). The key is returned once and never stored. */
export async function createApiKey(db: Database, projectName: string, keyName?: string, options: { scopes?: readonly ApiKeyScope[]; expiresAt?: Date | null } = {}) {
  const project = await db.project.upsert({ where: { name: projectName }, create: { name: projectName }, update: {} });
  const { key, apiKey } = await issueApiKey(db, project.id, { name: keyName, ...options });
  return { key, project, apiKey };
}

/** A key's row with its project, or null when the key is unknown, revoked or expired. */
async function findLiveKey(db: Database, key: string) {
  if (!key.startsWith(KEY_PREFIX)) return null;
  const apiKey = await db.apiKey.findUnique({ where: { hash: hashApiKey(key) }, include: { project: true } });
  if (!apiKey || apiKey.revokedAt || (apiKey.expiresAt && apiKey.expiresAt.getTime() <= Date.now())) return null;
  return apiKey;
}

/** The project a bearer key belongs to, or null when the key is unknown, revoked or expired. */
export async function findProjectByApiKey(db: Database, key: string): Promise<Project | null> {
  return (await findLiveKey(db, key))?.project ?? null;
}

/** Of the given key hashes, those whose key still exists, is not revoked and has not expired: one query for many keys. */
export async function liveKeyHashes(db: Database, hashes: string[]): Promise<Set<string>> {
  if (hashes.length === 0) return new Set();
  const rows = await db.apiKey.findMany({
    where: { hash: { in: hashes }, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] },
    select: { hash: true },
  });
  return new Set(rows.map((row) => row.hash));
}

/** Who is calling: the key's project, the key's hash (what a revocation is checked by), id and scopes. */
export type Caller = { project: Project; keyHash: string; keyId: string; scopes: ApiKeyScope[] };

/** `lastUsedAt` is written at most this often per key (and per process), not on every request. */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;

/** Extracts the key from an `Authorization: Bearer <key>` header value. */
export function bearerToken(header: string | null | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1] ?? null;
}

/**
 * Remembers which project a key belongs to for a short while, so a busy client
 * does not cost a database round trip per request. A revoked key keeps working
 * for at most `ttlMs`; unknown keys are not remembered, so a new key works at once.
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, { caller: Caller; expires: number }>();
  /** When this process last wrote each key's lastUsedAt. */
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 10_000,
  ) {}

  async projectFor(key: string): Promise<Project | null> {
    return (await this.callerFor(key))?.project ?? null;
  }

  async callerFor(key: string): Promise<Caller | null> {
    const hash = hashApiKey(key);
    const cached = this.entries.get(hash);
    const caller = cached && cached.expires > Date.now() ? cached.caller : await this.lookUp(key, hash);
    if (caller) this.noteUse(caller);
    return caller;
  }

  /**
   * The caller of `key` when this cache holds it and it has not expired, without a lookup; undefined otherwise.
   * For work that must not wait on the database (the rate counts before a request's body is read).
   */
  cachedCaller(key: string): Caller | undefined {
    const cached = this.entries.get(hashApiKey(key));
    return cached && cached.expires > Date.now() ? cached.caller : undefined;
  }

  /** Keeps `lastUsedAt` within LAST_USED_WRITE_INTERVAL_MS of the truth, with one throttled UPDATE per key; never waited on. */
  private noteUse(caller: Caller) {
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(caller.keyId) ?? 0) < LAST_USED_WRITE_INTERVAL_MS) return;
    if (this.lastUsedWritten.size >= this.maxEntries) this.lastUsedWritten.delete(this.lastUsedWritten.keys().next().value!);
    this.lastUsedWritten.set(caller.keyId, now);
    const stale = new Date(now - LAST_USED_WRITE_INTERVAL_MS);
    // Other gateways write too: the condition keeps it to one write per interval across them.
    void this.db.apiKey
      .updateMany({ where: { id: caller.keyId, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: stale } }] }, data: { lastUsedAt: new Date(now) } })
      .catch(() => this.lastUsedWritten.delete(caller.keyId));
  }

  /** Drops a key found revoked, so it stops working at once rather than when its entry expires. */
  forget(keyHash: string) {
    this.entries.delete(keyHash);
  }

  private async lookUp(key: string, hash: string): Promise<Caller | null> {
    this.entries.delete(hash);
    const apiKey = await findLiveKey(this.db, key);
    if (!apiKey) return null;
    const caller: Caller = {
      project: apiKey.project,
      keyHash: hash,
      keyId: apiKey.id,
      scopes: apiKey.scopes.filter((scope): scope is ApiKeyScope => (API_KEY_SCOPES as readonly string[]).includes(scope)),
    };
    // An expiring key is remembered no longer than it lives.
    const expires = Math.min(Date.now() + this.ttlMs, apiKey.expiresAt?.getTime() ?? Infinity);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(hash, { caller, expires });
    return caller;
  }
}
