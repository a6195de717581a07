import { createHash, randomBytes } from "node:crypto";
import type { Database, Project } from "./database.ts";

const KEY_PREFIX = "tsk_";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Creates the project if it is new, and a key for it. The key is returned once and never stored. */
export async function createApiKey(db: Database, projectName: string, keyName?: string) {
  const key = KEY_PREFIX + randomBytes(32).toString("base64url");
  const project = await db.project.upsert({ where: { name: projectName }, create: { name: projectName }, update: {} });
  await db.apiKey.create({
    data: { projectId: project.id, name: keyName, prefix: key.slice(0, 12), hash: hashApiKey(key) },
  });
  return { key, project };
}

/** The project a bearer key belongs to, or null when the key is unknown or revoked. */
export async function findProjectByApiKey(db: Database, key: string): Promise<Project | null> {
  if (!key.startsWith(KEY_PREFIX)) return null;
  const apiKey = await db.apiKey.findUnique({ where: { hash: hashApiKey(key) }, include: { project: true } });
  if (!apiKey || apiKey.revokedAt) return null;
  return apiKey.project;
}

/** Of the given key hashes, those whose key still exists and is not revoked: one query for many keys. */
export async function liveKeyHashes(db: Database, hashes: string[]): Promise<Set<string>> {
  if (hashes.length === 0) return new Set();
  const rows = await db.apiKey.findMany({ where: { hash: { in: hashes }, revokedAt: null }, select: { hash: true } });
  return new Set(rows.map((row) => row.hash));
}

/** Who is calling: the key's project, and the key's hash (what a revocation is checked by). */
export type Caller = { project: Project; keyHash: string };

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
  private readonly entries = new Map<string, { project: Project; expires: number }>();

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
    if (cached && cached.expires > Date.now()) return { project: cached.project, keyHash: hash };
    const project = await this.lookUp(key, hash);
    return project ? { project, keyHash: hash } : null;
  }

  /** Drops a key found revoked, so it stops working at once rather than when its entry expires. */
  forget(keyHash: string) {
    this.entries.delete(keyHash);
  }

  private async lookUp(key: string, hash: string): Promise<Project | null> {
    this.entries.delete(hash);
    const project = await findProjectByApiKey(this.db, key);
    if (project) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(hash, { project, expires: Date.now() + this.ttlMs });
    }
    return project;
  }
}
