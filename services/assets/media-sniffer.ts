import { open } from "node:fs/promises";
import path from "node:path";
import { fileTypeFromBuffer } from "file-type";
import type { Modality } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

/** What the bytes are, judged from their magic numbers alone. */
export type SniffedType = { modality: Modality; mimeType: string };

/** What the client said the content is: a file name and a MIME type, both untrusted. */
export type ClaimedType = { filename?: string | null; mimeType?: string | null };

/** How much of the head the type is judged from. */
export const SNIFF_BYTES = 64 * 1024;

/** Containers we accept, by the MIME type file-type reports. Audio vs video is settled later by ffprobe. */
const SUPPORTED: Record<string, Modality> = {
  "image/png": "IMAGE",
  "image/jpeg": "IMAGE",
  "image/webp": "IMAGE",
  "image/gif": "IMAGE",
  "audio/wav": "AUDIO",
  "audio/mpeg": "AUDIO",
  "audio/flac": "AUDIO",
  "audio/x-flac": "AUDIO",
  "audio/ogg": "AUDIO",
  "audio/opus": "AUDIO",
  "audio/ogg; codecs=opus": "AUDIO",
  "audio/mp4": "AUDIO",
  "audio/x-m4a": "AUDIO",
  "video/mp4": "VIDEO",
  "video/webm": "VIDEO",
  "video/quicktime": "VIDEO",
  // Its text layer is what gets ingested (pdftotext); the asset keeps the PDF bytes.
  "application/pdf": "TEXT",
};

const MARKDOWN_EXTENSIONS = new Set([".md", ".markdown", ".mdown"]);
const MARKDOWN_SIGNS = /^(#{1,6} \S|```|\s*[-*+] \S.*\n\s*[-*+] \S|>\s)|\[[^\]\n]+\]\([^)\s]+\)/m;

/** Reads the first bytes of a file and names its type; refuses what Tessera cannot ingest. */
export async function sniffFile(filePath: string, claimed: ClaimedType = {}): Promise<SniffedType> {
  const file = await open(filePath, "r");
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await file.read(head, 0, SNIFF_BYTES, 0);
    return await sniffBytes(head.subarray(0, bytesRead), claimed);
  } finally {
    await file.close();
  }
}

/** Names the type of `head` (the first bytes of the content); the claim only picks text/markdown or flags a lie. */
export async function sniffBytes(head: Uint8Array, claimed: ClaimedType = {}): Promise<SniffedType> {
  if (head.length === 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "the content is empty");
  const detected = await fileTypeFromBuffer(head);
  if (detected) {
    const modality = SUPPORTED[detected.mime];
    if (modality) return { modality, mimeType: detected.mime };
    throw new TesseraError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, `${detected.mime} is not a supported media type`, {
      detected: detected.mime,
    });
  }
  if (!looksLikeUtf8Text(head)) {
    throw new TesseraError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "the content is neither a supported media format nor UTF-8 text", {
      claimed: describeClaim(claimed),
    });
  }
  const claimedModality = claimedMediaModality(claimed);
  if (claimedModality) {
    // Text that says it is a picture or a song is a mistake or a trick; either way, not what the caller meant.
    throw new TesseraError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, `the content is text, but it was sent as ${claimedModality.toLowerCase()} (${describeClaim(claimed)})`, {
      detected: "text/plain",
      claimed: describeClaim(claimed),
    });
  }
  const named = MARKDOWN_EXTENSIONS.has(path.extname(claimed.filename ?? "").toLowerCase()) || claimed.mimeType === "text/markdown";
  return { modality: "TEXT", mimeType: named ? "text/markdown" : textMimeType(new TextDecoder().decode(head)) };
}

/** Markdown when the text shows its signs (headings, fences, lists, links); plain text otherwise. */
export function textMimeType(text: string): "text/markdown" | "text/plain" {
  return MARKDOWN_SIGNS.test(text) ? "text/markdown" : "text/plain";
}

/** Valid UTF-8 (a character cut at the end of the sample is fine) with no NUL or other binary control bytes. */
export function looksLikeUtf8Text(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: true });
  } catch {
    return false;
  }
  for (const byte of bytes) {
    if (byte === 0) return false;
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x0c && byte !== 0x1b) return false;
  }
  return true;
}

const MEDIA_EXTENSIONS: Record<string, Modality> = Object.fromEntries([
  ...["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "avif", "heic"].map((ext) => [ext, "IMAGE"]),
  ...["wav", "mp3", "flac", "ogg", "oga", "opus", "m4a", "aac"].map((ext) => [ext, "AUDIO"]),
  ...["mp4", "webm", "mov", "mkv", "avi", "m4v"].map((ext) => [ext, "VIDEO"]),
]);

function claimedMediaModality(claimed: ClaimedType): Modality | undefined {
  const mimeType = claimed.mimeType?.toLowerCase() ?? "";
  if (mimeType.startsWith("image/")) return "IMAGE";
  if (mimeType.startsWith("audio/")) return "AUDIO";
  if (mimeType.startsWith("video/")) return "VIDEO";
  const extension = path.extname(claimed.filename ?? "").slice(1).toLowerCase();
  return MEDIA_EXTENSIONS[extension];
}

function describeClaim(claimed: ClaimedType): string {
  return [claimed.filename, claimed.mimeType].filter(Boolean).join(", ") || "no name or type given";
}
