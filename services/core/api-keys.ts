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
    const hash = hashApiKey(key);
    const cached = this.entries.get(hash);
    if (cached && cached.expires > Date.now()) return cached.project;
    this.entries.delete(hash);
    const project = await findProjectByApiKey(this.db, key);
    if (project) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(hash, { project, expires: Date.now() + this.ttlMs });
    }
    return project;
  }
}
