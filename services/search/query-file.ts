import type { DecodedImage } from "../assets/decoded-media.ts";
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { decodeAudioToPcm, decodeImageToRgb, sampleVideoFrames } from "../assets/media-decoders.ts";
import { decodeUtf8 } from "../assets/media-inspector.ts";
import { sniffBytes } from "../assets/media-sniffer.ts";
import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

/** An uploaded search query, decoded into what the encoders take. A video is its sampled frames. */
export type DecodedQuery =
  | { modality: "TEXT"; text: string }
  | { modality: "IMAGE"; images: DecodedImage[] }
  | { modality: "AUDIO"; clip: Float32Array };

export type QueryDecodeLimits = Pick<
  Config,
  "IMAGE_MAX_SIDE" | "MAX_IMAGE_PIXELS" | "AUDIO_MAX_SECONDS" | "MEDIA_TOOL_TIMEOUT_MS" | "VIDEO_FRAME_RATE" | "VIDEO_MAX_FRAMES"
>;

/** A query clip longer than this says nothing more about what to look for. */
const MAX_QUERY_AUDIO_SECONDS = 60;

/**
 * Decodes a query upload with the same decoders and limits ingest uses, so a
 * query is encoded exactly as a stored asset of its kind was: type from the
 * bytes (never the name), then images with sharp, audio and video frames with
 * ffmpeg. Refusals carry the ingest codes (UNSUPPORTED_MEDIA_TYPE, CORRUPT_MEDIA, ...).
 */
export async function decodeQueryFile(bytes: Buffer, limits: QueryDecodeLimits): Promise<DecodedQuery> {
  if (bytes.length === 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "the query file is empty");
  const { modality } = await sniffBytes(bytes.subarray(0, 64 * 1024));
  if (modality === "TEXT") {
    const text = decodeUtf8(bytes).trim();
    if (!text) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "the query file has no text");
    return { modality: "TEXT", text };
  }
  // sharp and ffmpeg read files: the upload goes to a temporary one for the time of decoding.
  const file = path.join(os.tmpdir(), `tessera-query-${randomUUID()}`);
  await fs.writeFile(file, bytes);
  try {
    switch (modality) {
      case "IMAGE":
        return { modality, images: [await decodeImageToRgb(file, { maxSide: limits.IMAGE_MAX_SIDE, maxPixels: limits.MAX_IMAGE_PIXELS })] };
      case "AUDIO": {
        const maxSeconds = Math.min(limits.AUDIO_MAX_SECONDS, MAX_QUERY_AUDIO_SECONDS);
        const { samples } = await decodeAudioToPcm(file, { maxSeconds, timeoutMs: limits.MEDIA_TOOL_TIMEOUT_MS });
        if (samples.length === 0) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the query audio has no samples");
        return { modality, clip: samples };
      }
      case "VIDEO": {
        const { frames } = await sampleVideoFrames(file, {
          rate: limits.VIDEO_FRAME_RATE,
          maxFrames: limits.VIDEO_MAX_FRAMES,
          maxSide: limits.IMAGE_MAX_SIDE,
          timeoutMs: limits.MEDIA_TOOL_TIMEOUT_MS,
        });
        if (frames.length === 0) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the query video has no frames");
        return { modality: "IMAGE", images: frames };
      }
    }
  } finally {
    await fs.rm(file, { force: true });
  }
}
