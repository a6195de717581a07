import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Signed webhooks, both ways, in the format Stripe made familiar:
 *
 *   Tessera-Signature: t=1733364000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
 *
 * `t` is the Unix time in seconds when the request was signed; `v1` is the
 * hex HMAC-SHA256, keyed by the secret, of `<t>.<raw body>`. A receiver
 * recomputes it over the bytes it got, compares in constant time, and refuses
 * a `t` too far from its clock (a replay). Several `v1=` entries may appear
 * (while a secret is rotated); one match is enough.
 */
export const SIGNATURE_HEADER = "tessera-signature";
/** The delivery's id: the same id twice is the same delivery (retries carry it unchanged). */
export const DELIVERY_HEADER = "tessera-delivery";
/** The event's type, on outbound deliveries. */
export const EVENT_HEADER = "tessera-event";

export function signatureOf(secret: string, timestamp: number, body: string | Uint8Array): string {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex");
}

/** The header value for a body signed now (or at `timestamp`). */
export function signatureHeader(secret: string, body: string | Uint8Array, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${signatureOf(secret, timestamp, body)}`;
}

/** `signature`: the matching v1 value (hex), which names this exact request. */
export type SignatureCheck = { ok: true; timestamp: number; signature: string } | { ok: false; reason: string };

/** Checks a `Tessera-Signature` header against the raw body and the clock. */
export function verifySignature(
  secret: string,
  header: string | null | undefined,
  body: string | Uint8Array,
  options: { toleranceSeconds: number; now?: number },
): SignatureCheck {
  if (!header) return { ok: false, reason: `the ${SIGNATURE_HEADER} header is missing` };
  const parts = header.split(",").map((part) => part.trim().split("=", 2) as [string, string | undefined]);
  const timestamps = parts.filter(([name]) => name === "t").map(([, value]) => Number(value));
  const signatures = parts.filter(([name, value]) => name === "v1" && value && /^[0-9a-f]{64}$/i.test(value)).map(([, value]) => value!);
  const timestamp = timestamps[0];
  if (timestamps.length !== 1 || timestamp === undefined || !Number.isInteger(timestamp) || !signatures.length) {
    return { ok: false, reason: `the ${SIGNATURE_HEADER} header must be t=<unix seconds>,v1=<hex HMAC-SHA256>` };
  }
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > options.toleranceSeconds) {
    return { ok: false, reason: `the signature's timestamp is more than ${options.toleranceSeconds} s from the server's clock (a replay, or a wrong clock)` };
  }
  const expected = Buffer.from(signatureOf(secret, timestamp, body), "hex");
  const match = signatures.some((signature) => {
    const given = Buffer.from(signature, "hex");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return match ? { ok: true, timestamp, signature: expected.toString("hex") } : { ok: false, reason: "the signature does not match the body" };
}
