import { TesseraError } from "../core/errors.ts";
import type { Config } from "../core/config.ts";
import { PCM_SAMPLE_RATE } from "../assets/media-decoders.ts";
import { recognizeSpeech } from "../generation/pocketsphinx-transcriber.ts";
import type { ModelRuntime } from "../models/model-runtime.ts";

/** Words past the start of a query clip add little to what to look for, and recognition costs about real time. */
export const MAX_HEARD_QUERY_SECONDS = 30;
/** Query clips recognised at once by this process; more wait their turn (each is a pocketsphinx process). */
const MAX_CONCURRENT_RECOGNITIONS = 2;

export type HearingLimits = Pick<Config, "MEDIA_TOOL_TIMEOUT_MS" | "SEARCH_MAX_TEXT_CHARS">;

/**
 * The words spoken in an audio query, as ingest hears a stored clip: the served transcription model (Whisper)
 * when there is one, else the offline recogniser (pocketsphinx, a child process with a time limit, off the event
 * loop). Only the first MAX_HEARD_QUERY_SECONDS are heard. An encoder that cannot transcribe hears nothing.
 * Hearing is a bonus: a recogniser that fails or gives up leaves the query its sound alone (undefined).
 */
export async function hearQuery(
  encoder: Partial<Pick<ModelRuntime, "transcribe">>,
  clip: Float32Array,
  limits: HearingLimits,
  recognize: typeof recognizeSpeech = recognizeSpeech,
): Promise<string | undefined> {
  if (!encoder.transcribe) return undefined;
  const heard = clip.subarray(0, MAX_HEARD_QUERY_SECONDS * PCM_SAMPLE_RATE);
  try {
    const served = await encoder.transcribe(heard);
    const text = served ?? (await oneAtATime(() => recognize(heard, { timeoutMs: limits.MEDIA_TOOL_TIMEOUT_MS }))).words.map((word) => word.token).join(" ");
    return text.trim().slice(0, limits.SEARCH_MAX_TEXT_CHARS) || undefined;
  } catch (error) {
    if (error instanceof TesseraError) return undefined;
    throw error;
  }
}

let running = 0;
const waiting: Array<() => void> = [];

/** At most MAX_CONCURRENT_RECOGNITIONS at once; a finished one hands its slot straight to the next in line. */
async function oneAtATime<T>(work: () => Promise<T>): Promise<T> {
  if (running < MAX_CONCURRENT_RECOGNITIONS) running++;
  else await new Promise<void>((resolve) => waiting.push(resolve));
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}
