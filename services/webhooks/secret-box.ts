import { randomBytes } from "node:crypto";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { SecretBox } from "../core/secret-box.ts";
import { webhookSettings } from "./webhook-settings.ts";

/** Used only outside production when WEBHOOK_SECRETS_KEY is unset, so a development setup works out of the box. */
const DEVELOPMENT_KEY = "tessera-development-webhook-secrets-key";

function box(): SecretBox {
  const configured = webhookSettings().WEBHOOK_SECRETS_KEY;
  if (!configured && process.env.NODE_ENV === "production") {
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "webhook secrets need WEBHOOK_SECRETS_KEY (16 characters or more) in production");
  }
  return new SecretBox(configured ?? DEVELOPMENT_KEY, "WEBHOOK_SECRETS_KEY");
}

/** A new signing secret, shown to its owner once: `whsec_` and 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

/** Secrets are stored encrypted, not hashed: an HMAC needs the secret itself on both sides. */
export function encryptSecret(secret: string): string {
  return box().seal(secret);
}

export function decryptSecret(stored: string): string {
  return box().open(stored);
}
