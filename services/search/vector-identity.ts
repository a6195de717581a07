import { createHash } from "node:crypto";

/** RFC 4122 namespace for Tessera's vector ids (a fixed random UUID). */
const TESSERA_VECTOR_NAMESPACE = "6b0f5e8e-3c1a-4d5e-9a57-1f0c2b7d4e21";

/** UUID v5 of (asset, space, chunk): the same vector always gets the same id, so writing it twice replaces it. */
export function vectorId(assetId: string, space: string, chunk: number): string {
  const namespace = Buffer.from(TESSERA_VECTOR_NAMESPACE.replaceAll("-", ""), "hex");
  const hash = createHash("sha1").update(namespace).update(`${assetId}/${space}/${chunk}`).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
