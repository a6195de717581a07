/**
 * Media as the encoders take it: pixels and samples in plain buffers. The
 * decoders in media-decoders.ts make these; models, ingest and search read them.
 */

/** Raw interleaved RGB, 8 bits per channel, `width * height * 3` bytes. */
export type DecodedImage = { rgb: Buffer; width: number; height: number };

/** A frame sampled from a video, at its time in the video. */
export type VideoFrame = DecodedImage & { timeSec: number };

/** 16 kHz mono PCM in [-1, 1]. */
export type DecodedAudio = { samples: Float32Array; sampleRate: 16000; durationSec: number };
