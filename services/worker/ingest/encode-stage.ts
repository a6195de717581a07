import { withSpokenPhones } from "../../assets/asset-text.ts";
import type { DecodedImage } from "../../assets/decoded-media.ts";
import { TesseraError } from "../../core/errors.ts";
import { PCM_SAMPLE_RATE } from "../../assets/media-decoders.ts";
import { recognizeSpeech, wordSegments, type TimedToken } from "../../generation/pocketsphinx-transcriber.ts";
import type { JobHandlerContext } from "../job-handler.ts";
import { fuseVectors } from "../../models/fusion.ts";
import type { ModelRuntime, SpaceVectors } from "../../models/model-runtime.ts";
import type { AssetVector, IngestState, IngestStage, TextSpan } from "./ingest-stage.ts";

/** OCR is the slow part of a video: read the first frame of each shot, at most this many, spread over it. */
const MAX_OCR_FRAMES = 8;
/** Mean change of a grey 16x16 thumbnail (0-255) from one sampled frame to the next that starts a new shot. */
const SHOT_CHANGE = 6;
/** Silence kept around a VAD speech segment for the recogniser, and the longest stretch it gets at once. */
const SPEECH_PAD_SEC = 0.25;
const MAX_STRETCH_SEC = 30;
/** Text kept on a multi-chunk text's whole-asset vector (the chunks carry the rest). */
const WHOLE_TEXT_CHARS = 2000;

/**
 * Runs the modality encoders on what decode produced and adds vectors and
 * derived text to the state:
 * - text: each chunk into every text space; chunk 0 is the chunks' late fusion;
 * - image: the image into every image space; OCR lines become derived text;
 * - video: every sampled frame (chunk 1..n) and their late fusion (chunk 0)
 *   through the image encoder, OCR of a few frames, plus its audio track;
 * - audio: the clip into the audio space (and any space a projector reaches),
 *   VAD speech segments and a transcript: the served speech model's (Whisper)
 *   as one span, else pocketsphinx's words in timed segments plus the phones
 *   it heard (kept on the media record for search by pronunciation).
 * Derived text (OCR, transcript) is embedded into the text spaces too (chunk 0
 * where nothing else stands for the asset there, its own chunk otherwise), so
 * a text query finds the picture by the words in it.
 */
export const encodeStage: IngestStage = {
  name: "encode",
  async run(asset, state, context) {
    const { app } = context;
    const vectors = new VectorCollector();
    const models = app.models;
    if (state.text) await encodeText(models, state.text, vectors);
    if (state.image) await encodeImage(models, state.image, state, vectors);
    if (state.frames?.length) await encodeFrames(models, state.frames, state, vectors);
    if (state.audio) await encodeAudio(models, state.audio, state, vectors, { ...context, assetId: asset.id });
    const derived = state.derivedText.map((span) => span.text.trim()).filter(Boolean);
    if (derived.length && !state.text) {
      const text = [...new Set(derived)].join("\n");
      // Where nothing else speaks for the whole asset (an image's sentence space), the words do: chunk 0; else a part.
      for (const space of await models.embedText([text])) vectors.addWhole(space.space, space.model, space.vectors[0]!, text);
    }
    state.vectors.push(...vectors.all());
  },
};

/**
 * Chunks go to the encoders a window at a time: a long text never queues all its chunks at once (each queued
 * text holds memory and a place in the batcher ahead of other jobs' work), and the event loop gets a turn
 * between windows.
 */
const TEXT_ENCODE_WINDOW = 256;

async function encodeText(models: ModelRuntime, text: NonNullable<IngestState["text"]>, vectors: VectorCollector) {
  const chunks = text.chunks.filter((chunk) => chunk.text.trim());
  if (chunks.length === 0) return;
  const bySpace = new Map<string, { model: string; vectors: Float32Array[] }>();
  for (let from = 0; from < chunks.length; from += TEXT_ENCODE_WINDOW) {
    const window = chunks.slice(from, from + TEXT_ENCODE_WINDOW);
    for (const space of await models.embedText(window.map((chunk) => chunk.text))) {
      const entry = bySpace.get(space.space) ?? { model: space.model, vectors: [] };
      entry.vectors.push(...space.vectors);
      bySpace.set(space.space, entry);
    }
  }
  for (const [space, { model, vectors: spaceVectors }] of bySpace) {
    if (chunks.length === 1) {
      vectors.addWhole(space, model, spaceVectors[0]!, chunks[0]!.text);
      continue;
    }
    // Longer chunks say more about the whole: weight them by length.
    const whole = fuseVectors(spaceVectors.map((vector, index) => ({ vector, weight: chunks[index]!.text.length })));
    vectors.addWhole(space, model, whole, text.content.slice(0, WHOLE_TEXT_CHARS));
    spaceVectors.forEach((vector, index) => vectors.addPart(space, model, vector, chunks[index]!.text));
  }
}

async function encodeImage(models: ModelRuntime, image: DecodedImage, state: IngestState, vectors: VectorCollector) {
  const [spaces, lines] = await Promise.all([models.embedImages([image]), models.readText(image)]);
  for (const space of spaces) vectors.addWhole(space.space, space.model, space.vectors[0]!);
  state.derivedText.push(...lines.map((line): TextSpan => ({ kind: "ocr", text: line.text, start: 0, end: 0 })));
}

async function encodeFrames(models: ModelRuntime, frames: NonNullable<IngestState["frames"]>, state: IngestState, vectors: VectorCollector) {
  const spaces: SpaceVectors[] = await models.embedImages(frames);
  for (const space of spaces) {
    // Late fusion with equal weights: a video is what its sampled frames show, on average.
    vectors.addWhole(space.space, space.model, fuseVectors(space.vectors.map((vector) => ({ vector }))));
    space.vectors.forEach((vector) => vectors.addPart(space.space, space.model, vector));
  }
  // On-screen text with its times: each shot's lines span from its first frame to the next shot read.
  const shots = shotStarts(frames);
  const read = shots.length <= MAX_OCR_FRAMES ? shots : Array.from({ length: MAX_OCR_FRAMES }, (_, index) => shots[Math.floor((index * shots.length) / MAX_OCR_FRAMES)]!);
  const frameSec = frames.length > 1 ? frames[1]!.timeSec - frames[0]!.timeSec : 1;
  const open = new Map<string, TextSpan>();
  for (const [position, index] of read.entries()) {
    const frame = frames[index]!;
    const until = position + 1 < read.length ? frames[read[position + 1]!]!.timeSec : frames.at(-1)!.timeSec + frameSec;
    for (const line of await models.readText(frame)) {
      const running = open.get(line.text);
      // The same line on consecutive shots is one span.
      if (running && running.end >= frame.timeSec) running.end = until;
      else {
        const span: TextSpan = { kind: "ocr", text: line.text, start: frame.timeSec, end: until };
        open.set(line.text, span);
        state.derivedText.push(span);
      }
    }
  }
}

/** Indexes of the frames that start a shot: the first, and each that differs enough from the one before. */
function shotStarts(frames: NonNullable<IngestState["frames"]>): number[] {
  const thumbnails = frames.map((frame) => greyThumbnail(frame));
  const starts = [0];
  for (let index = 1; index < frames.length; index++) {
    const [before, now] = [thumbnails[index - 1]!, thumbnails[index]!];
    let change = 0;
    for (let cell = 0; cell < now.length; cell++) change += Math.abs(now[cell]! - before[cell]!);
    if (change / now.length > SHOT_CHANGE) starts.push(index);
  }
  return starts;
}

/** Each cell the mean of 8x8 points in it: thin strokes of text count, single pixels do not decide. */
function greyThumbnail(frame: DecodedImage, side = 16, points = 8): Float32Array {
  const cells = new Float32Array(side * side);
  for (let y = 0; y < side * points; y++) {
    const row = Math.floor(((y + 0.5) * frame.height) / (side * points)) * frame.width;
    for (let x = 0; x < side * points; x++) {
      const offset = (row + Math.floor(((x + 0.5) * frame.width) / (side * points))) * 3;
      cells[Math.floor(y / points) * side + Math.floor(x / points)]! += (frame.rgb[offset]! + frame.rgb[offset + 1]! + frame.rgb[offset + 2]!) / 3 / (points * points);
    }
  }
  return cells;
}

async function encodeAudio(
  models: ModelRuntime,
  audio: NonNullable<IngestState["audio"]>,
  state: IngestState,
  vectors: VectorCollector,
  context: JobHandlerContext & { assetId: string },
) {
  if (audio.samples.length === 0) return;
  const [spaces, speech] = await Promise.all([models.embedAudio([audio.samples]), models.detectSpeech(audio.samples)]);
  // A video's frames already speak for it in a space they share with a projected audio track.
  for (const space of spaces) if (!vectors.hasWhole(space.space)) vectors.addWhole(space.space, space.model, space.vectors[0]!);
  state.derivedText.push(...speech.map((segment): TextSpan => ({ kind: "speech", text: "", ...segment })));
  // Without speech there is nothing to transcribe; without a VAD model, try anyway.
  if (speech.length === 0 && models.list().some((model) => model.task === "vad")) return;
  const transcript = await models.transcribe(audio.samples);
  if (transcript?.trim()) {
    state.derivedText.push({ kind: "transcript", text: transcript.trim(), start: 0, end: audio.durationSec });
    return;
  }
  if (transcript === null) await transcribeOffline(audio, state, context);
}

/**
 * No transcription model is served: pocketsphinx's words, in segments with their times, and its phones. Speech
 * recognition is a bonus here, never a reason to fail the asset: a missing binary or a recogniser that gives up
 * leaves the asset indexed without a transcript.
 */
async function transcribeOffline(audio: NonNullable<IngestState["audio"]>, state: IngestState, { app, logger, assetId }: JobHandlerContext & { assetId: string }) {
  const words: TimedToken[] = [];
  const phones: TimedToken[] = [];
  try {
    // One stretch of speech at a time: long silences before speech throw pocketsphinx's normalisation off.
    for (const stretch of speechStretches(state.derivedText, audio.durationSec)) {
      const from = Math.floor(stretch.start * PCM_SAMPLE_RATE);
      const clip = audio.samples.subarray(from, Math.ceil(stretch.end * PCM_SAMPLE_RATE));
      const heard = await recognizeSpeech(clip, { phones: true, timeoutMs: app.config.MEDIA_TOOL_TIMEOUT_MS });
      const shift = (token: TimedToken) => ({ ...token, start: token.start + from / PCM_SAMPLE_RATE, end: token.end + from / PCM_SAMPLE_RATE });
      words.push(...heard.words.map(shift));
      phones.push(...(heard.phones ?? []).map(shift));
    }
  } catch (error) {
    if (!(error instanceof TesseraError)) throw error;
    logger.warn({ err: error, assetId }, "offline speech recognition failed; the asset is indexed without a transcript");
    return;
  }
  for (const segment of wordSegments(words)) state.derivedText.push({ kind: "transcript", ...segment });
  if (phones.length) state.media = withSpokenPhones(state.media, phones.map((phone) => ({ phone: phone.token, start: phone.start, end: phone.end })));
}

/** Stretches to recognise: VAD's speech segments, padded and joined across short gaps; the whole clip without VAD. */
function speechStretches(spans: TextSpan[], durationSec: number): Array<{ start: number; end: number }> {
  const speech = spans.filter((span) => span.kind === "speech").sort((a, b) => a.start - b.start);
  if (speech.length === 0) return [{ start: 0, end: durationSec }];
  const stretches: Array<{ start: number; end: number }> = [];
  for (const span of speech) {
    const start = Math.max(0, span.start - SPEECH_PAD_SEC);
    const end = Math.min(durationSec, span.end + SPEECH_PAD_SEC);
    const last = stretches.at(-1);
    if (last && start - last.end < 1 && end - last.start <= MAX_STRETCH_SEC) last.end = end;
    else stretches.push({ start, end });
  }
  return stretches;
}

/** Numbers chunks per space: 0 is the whole asset, 1.. its parts (text chunks, frames, derived text). */
class VectorCollector {
  private vectors: AssetVector[] = [];
  private nextChunk = new Map<string, number>();

  hasWhole(space: string) {
    return this.vectors.some((vector) => vector.space === space && vector.chunk === 0);
  }

  addWhole(space: string, model: string, vector: Float32Array, text?: string) {
    if (this.hasWhole(space)) return this.addPart(space, model, vector, text);
    this.vectors.push({ space, model, vector, chunk: 0, ...(text ? { text } : {}) });
  }

  addPart(space: string, model: string, vector: Float32Array, text?: string) {
    const chunk = this.nextChunk.get(space) ?? 1;
    this.nextChunk.set(space, chunk + 1);
    this.vectors.push({ space, model, vector, chunk, ...(text ? { text } : {}) });
  }

  all() {
    return this.vectors;
  }
}
