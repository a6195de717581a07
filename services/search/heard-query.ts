import { TesseraError } from "../core/errors.ts";
import type { Config } from "../core/config.ts";
import { PCM_SAMPLE_RATE } from "../assets/media-decoders.ts";
import type { ModelRuntime } from "../models/model-runtime.ts";

/** Words past the start of a query clip add little to what to look for, and transcription costs with its length. */
export const MAX_HEARD_QUERY_SECONDS = 30;

export type HearingLimits = Pick<Config, "SEARCH_MAX_TEXT_CHARS">;

/**
 * The words spoken in an audio query, heard by the served transcription model (Whisper) when there is one; only the
 * first MAX_HEARD_QUERY_SECONDS. Without one the query is its sound alone: the offline recogniser that ingest falls
 * back on (pocketsphinx) got 0 of the demo labels' words right on espeak-ng voices (word error rate 1.03,
 * bench/README "transcription") and costs 1-3x real time per clip, so on a query it would add seconds of latency
 * and wrong words; stored clips are found by their phones instead (segments.ts). A transcriber that fails or gives
 * up leaves the query its sound alone (undefined).
 */
export async function hearQuery(
  encoder: Partial<Pick<ModelRuntime, "transcribe">>,
  clip: Float32Array,
  limits: HearingLimits,
): Promise<string | undefined> {
  if (!encoder.transcribe) return undefined;
  try {
    const text = await encoder.transcribe(clip.subarray(0, MAX_HEARD_QUERY_SECONDS * PCM_SAMPLE_RATE));
    return text?.trim().slice(0, limits.SEARCH_MAX_TEXT_CHARS) || undefined;
  } catch (error) {
    if (error instanceof TesseraError) return undefined;
    throw error;
  }
}
