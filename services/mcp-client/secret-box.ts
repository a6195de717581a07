import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

const VERSION = "v1";
/** Outside production, without MCP_SECRETS_KEY: a fixed key, so development needs no set-up (and protects nothing). */
const DEVELOPMENT_KEY = "tessera-development-only-mcp-secrets-key";

/**
 * AES-256-GCM for small secrets at rest (the header values of registered MCP servers): a fresh 96-bit IV per
 * value, the tag checked on opening, so a value changed in the database fails instead of decrypting to junk.
 * Sealed form: `v1.<iv>.<tag>.<ciphertext>`, each part base64url.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(keyMaterial: string) {
    this.key = createHash("sha256").update(keyMaterial, "utf8").digest();
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    const data = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return [VERSION, iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), data.toString("base64url")].join(".");
  }

  open(sealed: string): string {
    const [version, iv, tag, data] = sealed.split(".");
    if (version !== VERSION || iv === undefined || tag === undefined || data === undefined) {
      throw new TesseraError(ErrorCode.INTERNAL, "a stored secret is not in a known form");
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, Buffer.from(iv, "base64url"));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(data, "base64url")), decipher.final()]).toString("utf8");
    } catch {
      throw new TesseraError(ErrorCode.INTERNAL, "a stored secret could not be decrypted: was MCP_SECRETS_KEY changed?");
    }
  }
}

/** The box for this deployment's MCP secrets; in production only with MCP_SECRETS_KEY set. */
export function mcpSecretBox(config: Pick<Config, "MCP_SECRETS_KEY" | "NODE_ENV">): SecretBox {
  if (config.MCP_SECRETS_KEY) return new SecretBox(config.MCP_SECRETS_KEY);
  if (config.NODE_ENV === "production") {
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "MCP server headers cannot be stored or used: set MCP_SECRETS_KEY (at least 32 characters)");
  }
  return new SecretBox(DEVELOPMENT_KEY);
}
