import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decryptSecret, encryptSecret, newWebhookSecret } from "../../services/webhooks/secret-box.ts";
import { signatureHeader, verifySignature } from "../../services/webhooks/webhook-signature.ts";

describe("webhook signatures", () => {
  const secret = "whsec_test";
  const body = JSON.stringify({ hello: "world" });

  it("signs `<t>.<body>` with HMAC-SHA256 in the Stripe-like header, which a receiver can recompute by hand", () => {
    const header = signatureHeader(secret, body, 1_733_364_000);
    const expected = createHmac("sha256", secret).update(`1733364000.${body}`).digest("hex");
    expect(header).toBe(`t=1733364000,v1=${expected}`);
    expect(verifySignature(secret, header, body, { toleranceSeconds: 300, now: 1_733_364_100 })).toEqual({ ok: true, timestamp: 1_733_364_000, signature: expected });
  });

  it("refuses another body, another secret, a stale or future timestamp, and malformed headers", () => {
    const now = 1_733_364_000;
    const header = signatureHeader(secret, body, now);
    expect(verifySignature(secret, header, body + " ", { toleranceSeconds: 300, now }).ok).toBe(false);
    expect(verifySignature("whsec_other", header, body, { toleranceSeconds: 300, now }).ok).toBe(false);
    expect(verifySignature(secret, header, body, { toleranceSeconds: 300, now: now + 301 })).toMatchObject({ ok: false, reason: expect.stringContaining("replay") });
    expect(verifySignature(secret, header, body, { toleranceSeconds: 300, now: now - 301 }).ok).toBe(false);
    for (const bad of [null, "", "v1=abc", `t=${now}`, `t=x,v1=${"0".repeat(64)}`, `t=${now},t=${now},v1=${"0".repeat(64)}`]) {
      expect(verifySignature(secret, bad, body, { toleranceSeconds: 300, now }).ok).toBe(false);
    }
  });

  it("accepts any one matching v1 among several (a secret being rotated)", () => {
    const now = 1_733_364_000;
    const good = signatureHeader(secret, body, now).split("v1=")[1];
    expect(verifySignature(secret, `t=${now},v1=${"a".repeat(64)},v1=${good}`, body, { toleranceSeconds: 300, now }).ok).toBe(true);
  });

  it("stores secrets encrypted: the stored form does not contain the secret, and decrypts back", () => {
    const plain = newWebhookSecret();
    const stored = encryptSecret(plain);
    expect(stored).not.toContain(plain.slice(6));
    expect(encryptSecret(plain)).not.toBe(stored); // a fresh IV each time
    expect(decryptSecret(stored)).toBe(plain);
    const [version, iv, tag, data] = stored.split(".");
    const flipped = Buffer.from(data!, "base64url");
    flipped[0] = flipped[0]! ^ 0xff;
    const tampered = [version, iv, tag, flipped.toString("base64url")].join(".");
    expect(() => decryptSecret(tampered)).toThrow(/cannot be decrypted/);
  });
});
