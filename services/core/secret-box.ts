import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { ErrorCode, TesseraError } from "./errors.ts";

const VERSION = "v1";

/**
 * AES-256-GCM for small secrets at rest (MCP server headers, webhook signing secrets): a fresh 96-bit IV per
 * value, the tag checked on opening, so a value changed in the database fails instead of decrypting to junk.
 * Sealed form: `v1.<iv>.<tag>.<ciphertext>`, each part base64url.
 */
export class SecretBox {
  private readonly key: Buffer;

  /** `keyName` is the setting the key material comes from, named when a value cannot be opened. */
  constructor(
    keyMaterial: string,
    private readonly keyName: string,
  ) {
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
      throw new TesseraError(ErrorCode.INTERNAL, `a stored secret cannot be decrypted: was ${this.keyName} changed?`);
    }
  }
}
