import type { Asset } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { ingestContent } from "../assets/ingest-service.ts";
import { modelRouterFor, type RouterHost } from "./app-model-router.ts";
import { attachmentParts, imagePartOf, transcriptOf, videoFrameParts, type AttachmentSources } from "./asset-attachments.ts";
import { defaultAliasFor, type GenerateRequest } from "./generate-request.ts";
import type { ChatMessage, ContentPart } from "./language-model-provider.ts";
import type { UsageMeter } from "./usage-meter.ts";

export type GenerateOutput =
  | { task: "TEXT" | "CAPTION" | "TRANSCRIPT"; text: string; model: string; finishReason?: string }
  | { task: "SPEECH" | "IMAGE"; assetId: string; ingestJobId: string; modality: "AUDIO" | "IMAGE"; mimeType: string; model: string; durationSec?: number };

/** What a generation needs of the process: a router, attachments, and ingest for the media it makes (an AppContext is one). */
export type GenerationDeps = RouterHost & AttachmentSources & Parameters<typeof ingestContent>[0];

export type GenerateHooks = {
  usage: UsageMeter;
  /** Streamed text, for jobEvents or runEvents. */
  onToken?: (token: string) => void;
  signal?: AbortSignal;
  /** Stored on a generated asset, so it can be traced to what made it. */
  origin: Record<string, unknown>;
};

/**
 * Runs one generation: the `generate` job and the generate.* workflow steps
 * both come here. `assets` are the request's attachments, already checked to
 * belong to the project.
 */
export async function runGenerateTask(
  app: GenerationDeps,
  projectId: string,
  request: GenerateRequest,
  assets: Asset[],
  hooks: GenerateHooks,
): Promise<GenerateOutput> {
  const router = modelRouterFor(app);
  const options = { usage: hooks.usage, signal: hooks.signal };
  const visual = assets.some((asset) => asset.modality === "IMAGE" || asset.modality === "VIDEO");
  const alias = request.model ?? defaultAliasFor(request.task, visual, (name) => router.hasAlias(name));
  const prompt = request.prompt?.trim() ?? "";

  switch (request.task) {
    case "TEXT": {
      const attached = await attachmentParts(app, router, assets, options);
      const content: ContentPart[] = [...attached, { type: "text", text: prompt }];
      const messages: ChatMessage[] = [
        ...(request.system ? [{ role: "system" as const, content: request.system }] : []),
        { role: "user", content: attached.length ? content : prompt },
      ];
      const result = await router.chat(
        alias,
        { messages, maxTokens: request.maxTokens, temperature: request.temperature, onToken: hooks.onToken ?? (() => {}) },
        options,
      );
      return { task: "TEXT", text: result.text, model: alias, finishReason: result.finishReason };
    }
    case "CAPTION": {
      const asset = assets[0]!;
      const image = asset.modality === "IMAGE" ? await imagePartOf(app, asset) : (await videoFrameParts(app, asset)).frames[0];
      if (!image) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, `attachment ${asset.id} has no frame to caption`);
      const result = await router.caption(alias, { image, prompt: prompt || undefined, onToken: hooks.onToken }, options);
      return { task: "CAPTION", text: result.text, model: alias };
    }
    case "TRANSCRIPT": {
      const asset = assets[0]!;
      const transcript = await transcriptOf(app, router, asset, request.model, options);
      if (transcript === null) throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, "no transcription model is configured (alias transcribe.default)");
      hooks.onToken?.(transcript.text);
      return { task: "TRANSCRIPT", text: transcript.text, model: transcript.model };
    }
    case "SPEECH": {
      const speech = await router.speak(alias, { text: prompt, voice: request.voice }, options);
      const ingested = await ingestGenerated(app, projectId, { bytes: speech.bytes, mimeType: speech.mimeType, modality: "AUDIO", filename: "speech.wav" }, {
        ...hooks.origin,
        task: "SPEECH",
        model: alias,
      });
      return { task: "SPEECH", ...ingested, modality: "AUDIO", mimeType: speech.mimeType, model: alias, durationSec: speech.durationSec };
    }
    case "IMAGE": {
      const image = await router.generateImage(alias, { prompt, size: request.size }, options);
      const extension = image.mimeType === "image/png" ? "png" : "jpg";
      const ingested = await ingestGenerated(app, projectId, { bytes: image.bytes, mimeType: image.mimeType, modality: "IMAGE", filename: `image.${extension}` }, {
        ...hooks.origin,
        task: "IMAGE",
        model: alias,
        ...(image.revisedPrompt ? { revisedPrompt: image.revisedPrompt } : {}),
      });
      return { task: "IMAGE", ...ingested, modality: "IMAGE", mimeType: image.mimeType, model: alias };
    }
  }
}

/** Generated media enters the project like any upload: through ingest, so it is decoded, encoded and searchable. */
async function ingestGenerated(
  app: GenerationDeps,
  projectId: string,
  media: { bytes: Buffer; mimeType: string; modality: "AUDIO" | "IMAGE"; filename: string },
  origin: Record<string, unknown>,
) {
  const { asset, job } = await ingestContent(
    app,
    projectId,
    { bytes: media.bytes, modality: media.modality, mimeType: media.mimeType, source: "upload", filename: media.filename },
    { metadata: { generated: origin }, tags: ["generated"] },
  );
  return { assetId: asset.id, ingestJobId: job.id };
}
