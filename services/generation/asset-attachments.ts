import sharp from "sharp";
import { decodeAudioToPcm, sampleVideoFrames } from "../assets/media-decoders.ts";
import type { BlobStore } from "../assets/blob-store.ts";
import type { Asset } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { AudioClip, ContentPart, ImagePart } from "./language-model-provider.ts";
import type { ModelRuntime } from "../models/model-runtime.ts";
import type { ModelRouter, RouteOptions } from "./model-router.ts";
import { encodeWav } from "./wav-file.ts";

/** Vision models take a few megapixels at most; larger images only cost tokens. */
const MAX_IMAGE_SIDE = 1536;
const PASS_THROUGH_TYPES = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);
const MAX_PASS_THROUGH_BYTES = 4 * 1024 * 1024;
const VIDEO_FRAMES = 4;
const MAX_TEXT_CHARS = 20_000;
const MAX_AUDIO_SECONDS = 30 * 60;
const TOOL_TIMEOUT_MS = 120_000;
/** The built-in offline transcriber's alias (generation-config.ts). */
export const OFFLINE_TRANSCRIBER = "transcribe.offline";

/** Where attachments come from: the blob store, and the worker's own transcriber for audio without a transcription alias. */
export type AttachmentSources = { blobs: BlobStore; models: Pick<ModelRuntime, "transcribe"> };

/** An image asset as an image part: passed through when a model takes it as is, re-encoded otherwise. */
export async function imagePartOf(app: Pick<AttachmentSources, "blobs">, asset: Asset): Promise<ImagePart> {
  const bytes = await app.blobs.read(asset.sha256);
  const metadata = await sharp(bytes)
    .metadata()
    .catch((error: Error) => {
      throw new TesseraError(ErrorCode.CORRUPT_MEDIA, `attachment ${asset.id} is not a readable image`, { reason: error.message });
    });
  const small = Math.max(metadata.width ?? 0, metadata.height ?? 0) <= MAX_IMAGE_SIDE && bytes.length <= MAX_PASS_THROUGH_BYTES;
  if (PASS_THROUGH_TYPES.has(asset.mimeType) && small) return { type: "image", mimeType: asset.mimeType, data: bytes };
  const data = await sharp(bytes)
    .rotate()
    .resize(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE, { fit: "inside", withoutEnlargement: true })
    .jpeg({ quality: 90 })
    .toBuffer();
  return { type: "image", mimeType: "image/jpeg", data };
}

/** A few frames spread over the video, as JPEG image parts. */
export async function videoFrameParts(app: Pick<AttachmentSources, "blobs">, asset: Asset): Promise<{ frames: ImagePart[]; hasAudio: boolean }> {
  const file = await app.blobs.localPath(asset.sha256);
  const { frames, hasAudio } = await sampleVideoFrames(file, { rate: 1, maxFrames: VIDEO_FRAMES, maxSide: 768, timeoutMs: TOOL_TIMEOUT_MS });
  const parts = await Promise.all(
    frames.map(async (frame) => ({
      type: "image" as const,
      mimeType: "image/jpeg",
      data: await sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer(),
    })),
  );
  return { frames: parts, hasAudio };
}

export async function audioClipOf(app: Pick<AttachmentSources, "blobs">, asset: Asset): Promise<AudioClip> {
  const file = await app.blobs.localPath(asset.sha256);
  const pcm = await decodeAudioToPcm(file, { maxSeconds: MAX_AUDIO_SECONDS, timeoutMs: TOOL_TIMEOUT_MS });
  return { samples: pcm.samples, sampleRate: 16000, wav: encodeWav(pcm.samples, 16000) };
}

/**
 * Speech to text of an audio or video asset: through a model alias when the
 * request names one or `transcribe.default` is configured, else through the
 * worker's own transcription model (a Whisper export), else through the
 * built-in offline transcriber (`transcribe.offline`, pocketsphinx); null
 * when none of them exists.
 */
export async function transcriptOf(
  app: AttachmentSources,
  router: ModelRouter,
  asset: Asset,
  alias: string | undefined,
  options: RouteOptions,
): Promise<{ text: string; model: string } | null> {
  const clip = await audioClipOf(app, asset);
  const chosen = alias ?? (router.hasAlias("transcribe.default") ? "transcribe.default" : undefined);
  if (chosen) return { text: (await router.transcribe(chosen, { audio: clip }, options)).text, model: chosen };
  const local = await app.models.transcribe(clip.samples);
  if (local !== null) return { text: local, model: "worker" };
  if (!router.hasAlias(OFFLINE_TRANSCRIBER)) return null;
  return { text: (await router.transcribe(OFFLINE_TRANSCRIBER, { audio: clip }, options)).text, model: OFFLINE_TRANSCRIBER };
}

/**
 * Attachments as content for a chat model, in the order given: images as
 * image parts, text as text, audio as its transcript, video as frames plus
 * its transcript when it has sound and a transcriber exists.
 */
export async function attachmentParts(app: AttachmentSources, router: ModelRouter, assets: Asset[], options: RouteOptions): Promise<ContentPart[]> {
  const parts: ContentPart[] = [];
  for (const asset of assets) {
    const label = `[attachment ${asset.id}${asset.filename ? ` "${asset.filename}"` : ""}, ${asset.modality.toLowerCase()}]`;
    switch (asset.modality) {
      case "IMAGE":
        parts.push({ type: "text", text: label }, await imagePartOf(app, asset));
        break;
      case "TEXT": {
        const text = (await app.blobs.read(asset.sha256)).toString("utf8");
        const clipped = text.length > MAX_TEXT_CHARS ? `${text.slice(0, MAX_TEXT_CHARS)}\n[... truncated]` : text;
        parts.push({ type: "text", text: `${label}\n${clipped}` });
        break;
      }
      case "AUDIO": {
        const transcript = await transcriptOf(app, router, asset, undefined, options);
        parts.push({ type: "text", text: `${label}\n${transcript === null ? "(no transcription model is available)" : `Transcript: ${transcript.text}`}` });
        break;
      }
      case "VIDEO": {
        const { frames, hasAudio } = await videoFrameParts(app, asset);
        parts.push({ type: "text", text: `${label} ${frames.length} frames in time order:` }, ...frames);
        const transcript = hasAudio ? await transcriptOf(app, router, asset, undefined, options) : null;
        if (transcript) parts.push({ type: "text", text: `Transcript of its sound: ${transcript.text}` });
        break;
      }
    }
  }
  return parts;
}
