import { z } from "zod";
import { decodeAudioToPcm, PCM_SAMPLE_RATE } from "../../services/assets/media-decoders.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { recognizeSpeech } from "../../services/generation/pocketsphinx-transcriber.ts";
import { defineStepType } from "./step-type.ts";

/**
 * Where an audio or video asset has speech (voice activity detection on its
 * 16 kHz audio track), with each stretch transcribed by the worker's local
 * transcription model when one is served, else by the built-in offline
 * transcriber (pocketsphinx); `text` is null when neither can.
 */
export const speechSegmentsStep = defineStepType({
  uses: "speech.segments",
  description: "Find the stretches of speech in an AUDIO or VIDEO asset (VAD), each transcribed when a local transcription model is served.",
  with: z
    .object({
      asset: z.uuid(),
      transcribe: z.boolean().default(true).describe("Transcribe each segment with the worker's local model, if any."),
      maxSegments: z.number().int().min(1).max(1000).default(200),
    })
    .strict(),
  output: z
    .object({
      durationSec: z.number(),
      segments: z.array(z.object({ start: z.number(), end: z.number(), text: z.string().nullable() })),
    })
    .strict(),
  async run(input, context) {
    const { app, projectId } = context;
    const asset = await app.db.asset.findFirst({ where: { id: input.asset, projectId } });
    if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${input.asset} in this project`);
    if (asset.modality !== "AUDIO" && asset.modality !== "VIDEO") {
      throw new TesseraError(ErrorCode.BAD_USER_INPUT, `speech.segments needs an AUDIO or VIDEO asset, not ${asset.modality}`);
    }
    const audio = await decodeAudioToPcm(await app.blobs.localPath(asset.sha256), {
      maxSeconds: app.config.AUDIO_MAX_SECONDS,
      timeoutMs: app.config.MEDIA_TOOL_TIMEOUT_MS,
    });
    const found = (await app.models.detectSpeech(audio.samples)).slice(0, input.maxSegments);
    context.log(`${found.length} speech segment(s) in ${audio.durationSec.toFixed(1)} s`);
    const segments = [];
    const served = app.models.list().some((model) => model.task === "transcribe");
    for (const segment of found) {
      context.signal.throwIfAborted();
      const clip = audio.samples.subarray(Math.floor(segment.start * PCM_SAMPLE_RATE), Math.ceil(segment.end * PCM_SAMPLE_RATE));
      let text: string | null = null;
      if (input.transcribe && served) text = await app.models.transcribe(clip);
      else if (input.transcribe) {
        const heard = await recognizeSpeech(clip, { timeoutMs: app.config.MEDIA_TOOL_TIMEOUT_MS }).catch((error: unknown) => {
          if (error instanceof TesseraError && error.code === ErrorCode.SERVICE_UNAVAILABLE) return null; // pocketsphinx not installed
          throw error;
        });
        text = heard ? heard.words.map((word) => word.token).join(" ") : null;
      }
      segments.push({ start: segment.start, end: segment.end, text });
    }
    return { durationSec: audio.durationSec, segments };
  },
});
