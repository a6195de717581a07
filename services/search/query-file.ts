import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileTypeFromBuffer } from "file-type";
import sharp from "sharp";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { DecodedImage } from "../worker/ingest/ingest-stage.ts";

/** An uploaded search query, decoded into what the encoders take. */
export type DecodedQuery =
  | { modality: "TEXT"; text: string }
  | { modality: "IMAGE"; image: DecodedImage }
  | { modality: "AUDIO"; clip: Float32Array };

/** Queries are encoded at model resolution; a bigger image only costs memory. */
const MAX_QUERY_IMAGE_SIDE = 1024;
const MAX_QUERY_AUDIO_SECONDS = 60;
const TOOL_TIMEOUT_MS = 30_000;

/**
 * Decodes a query upload by its bytes, never its name: images with sharp,
 * audio (and a video's first frame) with ffmpeg, UTF-8 text as text.
 * Anything else is UNSUPPORTED_MEDIA_TYPE; bytes that do not decode are CORRUPT_MEDIA.
 */
export async function decodeQueryFile(bytes: Buffer): Promise<DecodedQuery> {
  if (bytes.length === 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "the query file is empty");
  const type = await fileTypeFromBuffer(bytes);
  if (!type) {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
    try {
      const decoded = text.decode(bytes).trim();
      if (decoded && !decoded.includes("\u0000")) return { modality: "TEXT", text: decoded };
    } catch {
      // not UTF-8: falls through to the refusal below
    }
    throw new TesseraError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "the query file is not an image, audio, video or UTF-8 text");
  }
  if (type.mime.startsWith("image/")) return { modality: "IMAGE", image: await decodeImage(bytes) };
  if (type.mime.startsWith("audio/")) return { modality: "AUDIO", clip: await decodeAudio(bytes, type.ext) };
  if (type.mime.startsWith("video/")) return { modality: "IMAGE", image: await decodeImage(await firstFrame(bytes, type.ext)) };
  throw new TesseraError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, `cannot search by a ${type.mime} file`);
}

async function decodeImage(bytes: Buffer): Promise<DecodedImage> {
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: 100_000_000 })
      .rotate()
      .resize(MAX_QUERY_IMAGE_SIDE, MAX_QUERY_IMAGE_SIDE, { fit: "inside", withoutEnlargement: true })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { rgb: data, width: info.width, height: info.height };
  } catch (error) {
    throw new TesseraError(ErrorCode.CORRUPT_MEDIA, `the query image does not decode: ${(error as Error).message}`);
  }
}

/** ffmpeg reads containers such as MP4 only from a seekable file. */
async function withTempFile<T>(bytes: Buffer, extension: string, use: (file: string) => Promise<T>): Promise<T> {
  const file = path.join(os.tmpdir(), `tessera-query-${randomUUID()}.${extension}`);
  await fs.writeFile(file, bytes);
  try {
    return await use(file);
  } finally {
    await fs.rm(file, { force: true });
  }
}

async function ffmpeg(args: string[]): Promise<Buffer> {
  try {
    const { stdout } = await promisify(execFile)("ffmpeg", ["-v", "error", "-nostdin", ...args], {
      encoding: "buffer",
      timeout: TOOL_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? "").trim().split("\n").at(-1);
    throw new TesseraError(ErrorCode.CORRUPT_MEDIA, `the query media does not decode: ${stderr || (error as Error).message}`);
  }
}

async function decodeAudio(bytes: Buffer, extension: string): Promise<Float32Array> {
  const pcm = await withTempFile(bytes, extension, (file) =>
    ffmpeg(["-i", file, "-t", String(MAX_QUERY_AUDIO_SECONDS), "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"]),
  );
  if (pcm.length < 4) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the query audio has no samples");
  return new Float32Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.length - (pcm.length % 4)));
}

async function firstFrame(bytes: Buffer, extension: string): Promise<Buffer> {
  const png = await withTempFile(bytes, extension, (file) =>
    ffmpeg(["-i", file, "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "pipe:1"]),
  );
  if (png.length === 0) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the query video has no frames");
  return png;
}
