import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** What a content URL serves: the stored bytes, or a small preview of an image. */
export type ContentVariant = "original" | "thumbnail";

/** The path every content URL starts with; the gateway serves it (services/gateway/content-route.ts). */
export const CONTENT_PATH_PREFIX = "/content/";

type SignerConfig = { CONTENT_URL_SECRET?: string; CONTENT_URL_TTL_SECONDS: number };

/** One key per configuration object: the resolver that signs and the route that checks share it in one process. */
const keys = new WeakMap<object, Buffer>();
function keyOf(config: SignerConfig): Buffer {
  let key = keys.get(config);
  if (!key) keys.set(config, (key = config.CONTENT_URL_SECRET ? Buffer.from(config.CONTENT_URL_SECRET, "utf8") : randomBytes(32)));
  return key;
}

function signature(key: Buffer, projectId: string, assetId: string, variant: ContentVariant, expires: number): string {
  return createHmac("sha256", key).update(`tessera-content-v1\n${projectId}\n${assetId}\n${variant}\n${expires}`).digest("base64url");
}

/**
 * A short-lived URL path for one asset's bytes: the project, asset, variant and expiry (unix seconds)
 * are signed with HMAC-SHA256 under CONTENT_URL_SECRET, so none of them can be changed without the key.
 */
export function signContentPath(
  config: SignerConfig,
  target: { projectId: string; assetId: string; variant: ContentVariant },
  now = Date.now(),
): { path: string; expiresAt: Date } {
  const expires = Math.floor(now / 1000) + config.CONTENT_URL_TTL_SECONDS;
  const sig = signature(keyOf(config), target.projectId, target.assetId, target.variant, expires);
  const suffix = target.variant === "thumbnail" ? "/thumbnail" : "";
  const path = `${CONTENT_PATH_PREFIX}${encodeURIComponent(target.projectId)}/${encodeURIComponent(target.assetId)}${suffix}?expires=${expires}&sig=${sig}`;
  return { path, expiresAt: new Date(expires * 1000) };
}

export type ContentPathCheck =
  | { ok: true; projectId: string; assetId: string; variant: ContentVariant }
  | { ok: false; status: 403 | 404; reason: string };

const SEGMENT = /^[A-Za-z0-9-]{1,64}$/;

/** Checks a content URL's path and query: its signature first, then its expiry. */
export function verifyContentUrl(config: SignerConfig, url: URL, now = Date.now()): ContentPathCheck {
  const parts = url.pathname.slice(CONTENT_PATH_PREFIX.length).split("/");
  const [projectId, assetId, last] = parts;
  if (!projectId || !assetId || parts.length > 3 || (parts.length === 3 && last !== "thumbnail") || !SEGMENT.test(projectId) || !SEGMENT.test(assetId)) {
    return { ok: false, status: 404, reason: "not a content URL" };
  }
  const variant: ContentVariant = last === "thumbnail" ? "thumbnail" : "original";
  const expiresText = url.searchParams.get("expires") ?? "";
  const given = url.searchParams.get("sig") ?? "";
  if (!/^\d{1,12}$/.test(expiresText) || !given) return { ok: false, status: 403, reason: "the URL is not signed: ask the API for a new `contentUrl`" };
  const expires = Number(expiresText);
  const expected = Buffer.from(signature(keyOf(config), projectId, assetId, variant, expires));
  const actual = Buffer.from(given);
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    return { ok: false, status: 403, reason: "the URL's signature does not match: ask the API for a new `contentUrl`" };
  }
  if (expires * 1000 <= now) {
    return { ok: false, status: 403, reason: `the URL expired at ${new Date(expires * 1000).toISOString()}: ask the API for a new \`contentUrl\`` };
  }
  return { ok: true, projectId, assetId, variant };
}
