import { Prisma } from "../../core/database.ts";
import { decodeAudioToPcm, decodeImageToRgb, sampleVideoFrames } from "../../assets/media-decoders.ts";
import { decodeUtf8 } from "../../assets/media-inspector.ts";
import { extractPdfText } from "../../assets/pdf-text.ts";
import { chunkText } from "../../assets/text-chunker.ts";
import type { IngestStage, IngestState } from "./ingest-stage.ts";

/**
 * First stage after the blob is verified: turns the stored bytes into what the
 * encoders consume (text chunks with offsets; RGB pixels; 16 kHz mono PCM;
 * sampled video frames plus the sound track), and leaves a summary of it for
 * Asset.media.decoded in `state.media` (the handler writes it with the asset's
 * final status: one row write per job instead of one per stage).
 */
export const decodeStage: IngestStage = {
  name: "decode",
  async run(asset, state, { app, logger }) {
    const { config } = app;
    const filePath = await app.blobs.localPath(asset.sha256);
    const audioOptions = { maxSeconds: config.AUDIO_MAX_SECONDS, timeoutMs: config.MEDIA_TOOL_TIMEOUT_MS };
    switch (asset.modality) {
      case "TEXT": {
        const content =
          asset.mimeType === "application/pdf"
            ? (await extractPdfText(filePath, { timeoutMs: config.MEDIA_TOOL_TIMEOUT_MS })).text
            : decodeUtf8(await app.blobs.read(asset.sha256));
        // Past TEXT_MAX_CHUNKS the rest is left out (see summarize): the asset stays searchable by what was indexed.
        const chunks = chunkText(content, { size: config.TEXT_CHUNK_CHARS, overlap: config.TEXT_CHUNK_OVERLAP, maxChunks: config.TEXT_MAX_CHUNKS });
        const indexedCharacters = chunks.at(-1)?.end ?? 0;
        const truncated = chunks.length === config.TEXT_MAX_CHUNKS && content.slice(indexedCharacters).trim().length > 0;
        if (truncated) logger.warn({ assetId: asset.id, maxChunks: config.TEXT_MAX_CHUNKS, indexedCharacters, characters: content.length }, "text truncated at TEXT_MAX_CHUNKS");
        state.text = { content, chunks: chunks.map((chunk) => ({ kind: "chunk", ...chunk })), ...(truncated ? { truncated: { maxChunks: config.TEXT_MAX_CHUNKS, indexedCharacters } } : {}) };
        break;
      }
      case "IMAGE":
        state.image = await decodeImageToRgb(filePath, { maxSide: config.IMAGE_MAX_SIDE, maxPixels: config.MAX_IMAGE_PIXELS });
        break;
      case "AUDIO":
        state.audio = await decodeAudioToPcm(filePath, audioOptions);
        break;
      case "VIDEO": {
        const { frames, hasAudio } = await sampleVideoFrames(filePath, {
          rate: config.VIDEO_FRAME_RATE,
          maxFrames: config.VIDEO_MAX_FRAMES,
          maxSide: config.IMAGE_MAX_SIDE,
          timeoutMs: config.MEDIA_TOOL_TIMEOUT_MS,
        });
        state.frames = frames;
        if (hasAudio) state.audio = await decodeAudioToPcm(filePath, audioOptions);
        break;
      }
    }
    state.media = { ...(asset.media as Record<string, unknown>), decoded: summarize(state) } as Prisma.InputJsonValue;
  },
};

/** What was decoded, small enough for a JSON column: sizes and counts, never the pixels or samples. */
function summarize(state: IngestState) {
  return {
    ...(state.text
      ? { text: { characters: state.text.content.length, chunks: state.text.chunks.length, ...(state.text.truncated ? { truncated: true, ...state.text.truncated } : {}) } }
      : {}),
    ...(state.image ? { image: { width: state.image.width, height: state.image.height } } : {}),
    ...(state.frames
      ? { frames: { count: state.frames.length, width: state.frames[0]?.width, height: state.frames[0]?.height, timesSec: state.frames.map((frame) => frame.timeSec) } }
      : {}),
    ...(state.audio ? { audio: { sampleRate: state.audio.sampleRate, samples: state.audio.samples.length, durationSec: state.audio.durationSec } } : {}),
  };
}
