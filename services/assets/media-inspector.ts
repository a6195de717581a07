import { readFile } from "node:fs/promises";
import sharp from "sharp";
import type { Modality } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { runMediaTool } from "./media-tool.ts";
import { checkImageStructure, jpegFrameHeader, type KnownBytes } from "./image-structure.ts";
import { extractPdfText } from "./pdf-text.ts";
import { SNIFF_BYTES, sniffBytes, sniffFile, type ClaimedType } from "./media-sniffer.ts";

/** What decoding found, stored as Asset.media. */
export type MediaInfo = {
  width?: number;
  height?: number;
  durationSec?: number;
  sampleRate?: number;
  channels?: number;
  frameRate?: number;
  /** Video rotation the player applies (degrees), so decoders can account for it. */
  rotation?: number;
  codec?: string;
  audioCodec?: string;
  container?: string;
  pages?: number;
  characters?: number;
};

export type InspectedMedia = { modality: Modality; mimeType: string; media: MediaInfo };

export type InspectLimits = { maxImagePixels: number; toolTimeoutMs: number };

/** How many of the first and last bytes an upload keeps as it is stored, for inspectMedia (`known`). */
export const INSPECT_ENDS_BYTES = 64 * 1024;

/**
 * Checks that a stored file really is what its bytes say and that it can be
 * read, then describes it. Type comes from magic numbers; validation from
 * sharp's header read and a walk of the container (images: whole, not
 * truncated; the pixels are decoded by the ingest job) and ffprobe/ffmpeg
 * (audio, video). Throws a TesseraError otherwise. `known`, the file's size and
 * ends kept as it was stored, spares reading them back: the type is sniffed
 * from its head, and a JPEG's header and structure are read from its ends.
 */
export async function inspectMedia(filePath: string, claimed: ClaimedType, limits: InspectLimits, known?: KnownBytes): Promise<InspectedMedia> {
  const sniffed =
    known && known.head.length >= Math.min(known.size, SNIFF_BYTES)
      ? await sniffBytes(known.head.subarray(0, SNIFF_BYTES), claimed)
      : await sniffFile(filePath, claimed);
  switch (sniffed.modality) {
    case "IMAGE":
      return { ...sniffed, media: await inspectImage(filePath, sniffed.mimeType, limits, known) };
    case "AUDIO":
    case "VIDEO":
      return inspectAudioVideo(filePath, sniffed.mimeType, limits);
    case "TEXT":
      if (sniffed.mimeType === "application/pdf") {
        const pdf = await extractPdfText(filePath, { timeoutMs: limits.toolTimeoutMs });
        return { ...sniffed, media: { pages: pdf.pages, characters: pdf.text.length } };
      }
      return { ...sniffed, media: await inspectTextFile(filePath) };
  }
}

type ImageMetadata = Awaited<ReturnType<ReturnType<typeof sharp>["metadata"]>>;

async function inspectImage(filePath: string, mimeType: string, limits: InspectLimits, known?: KnownBytes): Promise<MediaInfo> {
  let metadata: ImageMetadata;
  try {
    // Reading the header decodes no pixels, so sharp's own pixel limit is not needed yet: ours follows.
    metadata = (await jpegHeadMetadata(mimeType, known)) ?? (await sharp(filePath, { limitInputPixels: false }).metadata());
  } catch (error) {
    throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the image cannot be read", { reason: messageOf(error) });
  }
  const { width = 0, height = 0 } = metadata;
  const pixels = width * height * (metadata.pages ?? 1);
  // Refused from the header alone, before any pixel is decoded: a small file can declare gigapixels.
  if (pixels > limits.maxImagePixels) {
    throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `the image declares ${width}x${height} pixels, more than the limit of ${limits.maxImagePixels}`, {
      width,
      height,
      maxPixels: limits.maxImagePixels,
    });
  }
  // The container must be whole (a truncated upload is refused here); the pixels are decoded once, by the ingest
  // job, which fails the asset with CORRUPT_MEDIA if they do not decode.
  await checkImageStructure(filePath, mimeType, known);
  return {
    width,
    height,
    codec: metadata.format,
    channels: metadata.channels,
    ...(metadata.pages && metadata.pages > 1 ? { pages: metadata.pages } : {}),
  };
}

/**
 * A JPEG's header (its frame header, before the first scan) read from the bytes kept of its head, without opening
 * the file: a JPEG has one image, so nothing sharp reports for it lies further on. Undefined for other formats, and
 * where the head does not hold the whole header (a long EXIF or ICC segment first): the file is read then.
 */
async function jpegHeadMetadata(mimeType: string, known: KnownBytes | undefined): Promise<ImageMetadata | undefined> {
  if (mimeType !== "image/jpeg" || !known) return undefined;
  // The frame header read here, as sharp would read it (test/unit/jpeg-header.test.ts): sharp's call was about a
  // twentieth of an upload's CPU and a hop through the thread pool (bench/README.md, ingest, sixth round).
  const frame = jpegFrameHeader(known.head);
  if (frame) return { ...frame, format: "jpeg" } as ImageMetadata;
  try {
    return await sharp(known.head, { limitInputPixels: false }).metadata();
  } catch {
    return undefined;
  }
}

type ProbeStream = {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  duration?: string;
  disposition?: { attached_pic?: number };
  tags?: { rotate?: string };
  side_data_list?: Array<{ rotation?: number }>;
};
type Probe = { streams?: ProbeStream[]; format?: { format_name?: string; duration?: string } };

export async function probeMedia(filePath: string, timeoutMs: number): Promise<Probe> {
  const { stdout } = await runMediaTool(
    "ffprobe",
    ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", "--", filePath],
    { timeoutMs, maxOutputBytes: 4 * 1024 * 1024 },
  );
  try {
    return JSON.parse(stdout.toString("utf8")) as Probe;
  } catch {
    throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "ffprobe gave no description of the media");
  }
}

async function inspectAudioVideo(filePath: string, mimeType: string, limits: InspectLimits): Promise<InspectedMedia> {
  const probe = await probeMedia(filePath, limits.toolTimeoutMs);
  const streams = probe.streams ?? [];
  // Cover art in an MP3 or M4A is a "video" stream too; it does not make the file a video.
  const video = streams.find((stream) => stream.codec_type === "video" && !stream.disposition?.attached_pic);
  const audio = streams.find((stream) => stream.codec_type === "audio");
  if (!video && !audio) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the file has no audio or video stream");
  if (audio && (!Number(audio.sample_rate) || !audio.channels)) {
    throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the audio stream declares no sample rate or channels");
  }
  if (video && (!video.width || !video.height)) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the video stream has no size");
  // A header can look right while the data behind it is not decodable: decode the first seconds to be sure.
  await runMediaTool("ffmpeg", ["-v", "error", "-xerror", "-i", filePath, "-t", "2", "-f", "null", "-"], {
    timeoutMs: limits.toolTimeoutMs,
    maxOutputBytes: 1024,
  });
  const durationSec = Number(probe.format?.duration ?? video?.duration ?? audio?.duration);
  const media: MediaInfo = {
    container: probe.format?.format_name,
    ...(Number.isFinite(durationSec) ? { durationSec } : {}),
    ...(audio
      ? { sampleRate: Number(audio.sample_rate), channels: audio.channels, [video ? "audioCodec" : "codec"]: audio.codec_name }
      : {}),
  };
  if (!video) {
    return { modality: "AUDIO", mimeType: mimeType.startsWith("video/") ? mimeType.replace("video/", "audio/") : mimeType, media };
  }
  const rotation = Number(video.side_data_list?.find((data) => data.rotation !== undefined)?.rotation ?? video.tags?.rotate ?? 0);
  return {
    modality: "VIDEO",
    mimeType: mimeType.startsWith("audio/") ? mimeType.replace("audio/", "video/") : mimeType,
    media: {
      ...media,
      width: video.width,
      height: video.height,
      codec: video.codec_name,
      frameRate: parseRate(video.avg_frame_rate) ?? parseRate(video.r_frame_rate),
      ...(rotation ? { rotation } : {}),
    },
  };
}

async function inspectTextFile(filePath: string): Promise<MediaInfo> {
  const text = decodeUtf8(await readFile(filePath));
  return { characters: text.length };
}

/** Strict UTF-8: text assets are decoded once here so the worker never meets invalid bytes. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the text is not valid UTF-8");
  }
}

function parseRate(rate: string | undefined): number | undefined {
  if (!rate) return undefined;
  const [numerator, denominator] = rate.split("/").map(Number);
  if (!numerator || !denominator) return undefined;
  return Math.round((numerator / denominator) * 1000) / 1000;
}

function messageOf(error: unknown) {
  return error instanceof Error ? error.message : String(error);
}
