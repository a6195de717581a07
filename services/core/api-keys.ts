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
