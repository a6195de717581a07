import sharp from "sharp";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { probeMedia } from "./media-inspector.ts";
import { runMediaTool } from "./media-tool.ts";
import type { DecodedAudio, DecodedImage, VideoFrame } from "./decoded-media.ts";

/**
 * Decoding for the encoders: pixels and samples in plain buffers. The
 * model-specific resize and normalisation happen in the encoders, from their
 * manifests; here images are only capped in size (aspect kept) and audio is
 * brought to the 16 kHz mono that speech and audio models expect.
 */

export const PCM_SAMPLE_RATE = 16000;

/** Any supported image to 8-bit RGB (alpha flattened on white, EXIF orientation applied), longest side at most `maxSide`. */
export async function decodeImageToRgb(filePath: string, options: { maxSide: number; maxPixels: number }): Promise<DecodedImage> {
  try {
    const { data, info } = await sharp(filePath, { limitInputPixels: options.maxPixels, animated: false })
      .rotate()
      .flatten({ background: "#ffffff" })
      .resize(options.maxSide, options.maxSide, { fit: "inside", withoutEnlargement: true })
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels, got ${info.channels}`);
    return { rgb: data, width: info.width, height: info.height };
  } catch (error) {
    // The ingest job's decode is where an upload's pixels are first decoded: its reason is the one the asset keeps.
    // Server paths are nobody's business but the server's.
    const reason = (error as Error).message.replaceAll(filePath, "<input>").trim();
    throw new TesseraError(ErrorCode.CORRUPT_MEDIA, `the image does not decode: ${reason}`, { reason });
  }
}

/** The first audio stream as 16 kHz mono float PCM in [-1, 1], at most `maxSeconds` long. */
export async function decodeAudioToPcm(filePath: string, options: { maxSeconds: number; timeoutMs: number }): Promise<DecodedAudio> {
  const { stdout } = await runMediaTool(
    "ffmpeg",
    ["-v", "error", "-i", filePath, "-map", "0:a:0", "-vn", "-t", String(options.maxSeconds), "-ac", "1", "-ar", String(PCM_SAMPLE_RATE), "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"],
    { timeoutMs: options.timeoutMs, maxOutputBytes: Math.ceil(options.maxSeconds * PCM_SAMPLE_RATE * 4) + 4096 },
  );
  // Copy into an aligned buffer: Float32Array needs a 4-byte aligned offset, which pooled Buffers do not promise.
  const samples = new Float32Array(stdout.length >> 2);
  new Uint8Array(samples.buffer).set(stdout.subarray(0, samples.length * 4));
  return { samples, sampleRate: PCM_SAMPLE_RATE, durationSec: samples.length / PCM_SAMPLE_RATE };
}

/**
 * Frames sampled evenly: `rate` per second, fewer for long videos so that at
 * most `maxFrames` cover the whole length. RGB, longest side at most `maxSide`.
 */
export async function sampleVideoFrames(
  filePath: string,
  options: { rate: number; maxFrames: number; maxSide: number; timeoutMs: number },
): Promise<{ frames: VideoFrame[]; hasAudio: boolean }> {
  const probe = await probeMedia(filePath, options.timeoutMs);
  const video = probe.streams?.find((stream) => stream.codec_type === "video" && !stream.disposition?.attached_pic);
  if (!video?.width || !video.height) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the file has no video stream");
  const hasAudio = Boolean(probe.streams?.some((stream) => stream.codec_type === "audio"));
  const durationSec = Number(probe.format?.duration ?? video.duration) || 0;
  // ffmpeg turns rotated video upright, so a 90-degree rotation swaps the sides.
  const rotation = Math.abs(Number(video.side_data_list?.find((data) => data.rotation !== undefined)?.rotation ?? video.tags?.rotate ?? 0)) % 180;
  const [sourceWidth, sourceHeight] = rotation === 90 ? [video.height, video.width] : [video.width, video.height];
  const scale = Math.min(1, options.maxSide / Math.max(sourceWidth, sourceHeight));
  const width = Math.max(1, Math.round(sourceWidth * scale));
  const height = Math.max(1, Math.round(sourceHeight * scale));
  const rate = durationSec > 0 ? Math.min(options.rate, options.maxFrames / durationSec) : options.rate;
  const frameBytes = width * height * 3;
  const { stdout } = await runMediaTool(
    "ffmpeg",
    [
      "-v", "error", "-i", filePath, "-map", "0:v:0", "-an",
      "-vf", `fps=${rate.toFixed(6)},scale=${width}:${height}:flags=area`,
      "-frames:v", String(options.maxFrames), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ],
    { timeoutMs: options.timeoutMs, maxOutputBytes: frameBytes * options.maxFrames },
  );
  const frames: VideoFrame[] = [];
  for (let index = 0; (index + 1) * frameBytes <= stdout.length; index++) {
    frames.push({ rgb: Buffer.from(stdout.subarray(index * frameBytes, (index + 1) * frameBytes)), width, height, timeSec: index / rate });
  }
  if (frames.length === 0) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "no frame of the video decodes");
  return { frames, hasAudio };
}
