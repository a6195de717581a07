import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { webhookSettings } from "./webhook-settings.ts";

/** Used only outside production when WEBHOOK_SECRETS_KEY is unset, so a development setup works out of the box. */
const DEVELOPMENT_KEY = "tessera-development-webhook-secrets-key";

function key(): Buffer {
  const configured = webhookSettings().WEBHOOK_SECRETS_KEY;
  if (!configured && process.env.NODE_ENV === "production") {
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "webhook secrets need WEBHOOK_SECRETS_KEY (16 characters or more) in production");
  }
  return createHash("sha256").update(configured ?? DEVELOPMENT_KEY).digest();
}

/** A new signing secret, shown to its owner once: `whsec_` and 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

/**
 * Secrets are stored encrypted, not hashed: an HMAC needs the secret itself on
 * both sides. `v1.<iv>.<tag>.<ciphertext>`, base64url, AES-256-GCM.
 */
export function encryptSecret(secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key(), iv);
  const data = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return ["v1", iv, cipher.getAuthTag(), data].map((part) => (typeof part === "string" ? part : part.toString("base64url"))).join(".");
}

export function decryptSecret(stored: string): string {
  const [version, iv, tag, data] = stored.split(".");
  if (version !== "v1" || !iv || !tag || data === undefined) throw new TesseraError(ErrorCode.INTERNAL, "a stored webhook secret has an unknown format");
  try {
    const decipher = createDecipheriv("aes-256-gcm", key(), Buffer.from(iv, "base64url"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(data, "base64url")), decipher.final()]).toString("utf8");
  } catch {
    throw new TesseraError(ErrorCode.INTERNAL, "a stored webhook secret cannot be decrypted: was WEBHOOK_SECRETS_KEY changed?");
  }
}
