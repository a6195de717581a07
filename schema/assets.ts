import { Readable } from "node:stream";
import { AssetStatus, Modality, type Asset } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import { ingestContent } from "../services/assets/ingest-service.ts";
import { reindexAsset } from "../services/assets/asset-reindex.ts";
import { IndexedTextKind, MAX_KEPT_TEXT_CHARS, mediaWithoutText, readIndexedText, type IndexedTextSpan } from "../services/assets/asset-text.ts";
import { signContentPath, type ContentVariant } from "../services/assets/content-urls.ts";
import type { Config } from "../services/core/config.ts";
import { THUMBNAIL_MAX_SIDE } from "../services/gateway/content-route.ts";
import { ingestFromUrl, ingestText, ingestUntyped } from "../services/assets/ingest-sources.ts";
import { StreamedUpload } from "../services/gateway/plugins/streamed-upload.ts";
import type { ProjectContext } from "../services/gateway/context.ts";
import { builder } from "./builder.ts";
import { direction, rowConnection } from "./connections.ts";
import { JobRef } from "./jobs.ts";

export const ModalityEnum = builder.enumType(Modality, {
  name: "Modality",
  description: "What kind of content an asset is.",
  values: {
    TEXT: { description: "Plain text, Markdown, HTML, PDF and the like." },
    IMAGE: { description: "A still image." },
    AUDIO: { description: "Sound: speech, music." },
    VIDEO: { description: "Moving pictures, with or without sound." },
  },
});
const AssetStatusEnum = builder.enumType(AssetStatus, {
  name: "AssetStatus",
  description: "Where an asset is in its ingest.",
  values: {
    PENDING: { description: "Stored; its ingest job waits for a worker." },
    PROCESSING: { description: "A worker is decoding, encoding and indexing it." },
    READY: { description: "Indexed: search finds it." },
    FAILED: { description: "Its ingest failed (`error` says why); `reindexAsset` tries again." },
  },
});

const IndexedTextKindEnum = builder.enumType(IndexedTextKind, {
  name: "IndexedTextKind",
  description: "Where a piece of an asset's indexed text came from.",
  values: {
    CHUNK: { description: "A chunk of a text asset; `start` and `end` are character offsets." },
    OCR: { description: "A line read from an image (times 0) or a video frame (the frame's time in seconds)." },
    TRANSCRIPT: { description: "What speech recognition heard; times in seconds." },
    SPEECH: { description: "A stretch where voice activity detection heard speech; empty text, times in seconds." },
    CAPTION: { description: "A generated description; times in seconds." },
  },
});

const IndexedTextSpanRef = builder.objectRef<IndexedTextSpan>("IndexedTextSpan").implement({
  description: "One piece of text an asset was indexed by (search's BM25 and snippets), with where it sits in the asset.",
  fields: (t) => ({
    kind: t.field({ type: IndexedTextKindEnum, description: "Where the text came from.", resolve: (span) => span.kind }),
    text: t.exposeString("text", { description: "The text itself." }),
    start: t.exposeFloat("start", { description: "Where it starts: a character offset for CHUNK, seconds otherwise." }),
    end: t.exposeFloat("end", { description: "Where it ends (exclusive for CHUNK): a character offset for CHUNK, seconds otherwise." }),
  }),
});

export const AssetRef = builder.objectRef<Asset>("Asset").implement({
  description: "A piece of content of the project (text, image, audio or video), stored once by its bytes and indexed for search.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The asset's id." }),
    modality: t.field({ type: ModalityEnum, description: "What kind of content it is.", resolve: (asset) => asset.modality }),
    sha256: t.exposeString("sha256", { description: "The SHA-256 of its bytes, in hex: the same bytes are one asset per project." }),
    mimeType: t.exposeString("mimeType", { description: "The media type found in its bytes (not the one claimed)." }),
    byteSize: t.exposeInt("byteSize", { description: "Its size in bytes." }),
    status: t.field({ type: AssetStatusEnum, description: "Where it is in its ingest.", resolve: (asset) => asset.status }),
    source: t.exposeString("source", { description: "How it came: upload, url or text." }),
    sourceUrl: t.exposeString("sourceUrl", { nullable: true, description: "The URL it was fetched from, for source url." }),
    filename: t.exposeString("filename", { nullable: true, description: "The uploaded file's name, when there was one." }),
    tags: t.exposeStringList("tags", { description: "Tags given at ingest; search filters on them." }),
    metadata: t.field({ type: "JSON", description: "The JSON object given at ingest; search filters on it.", resolve: (asset) => asset.metadata }),
    media: t.field({ type: "JSON", description: "What decoding found: dimensions, duration, codecs.", resolve: (asset) => mediaWithoutText(asset.media) }),
    contentUrl: t.string({
      description:
        "A short-lived signed URL of the asset's bytes, served by the gateway with byte ranges (audio and video seek in a browser). " +
        "It needs no API key and expires after CONTENT_URL_TTL_SECONDS (`contentUrlExpiresAt`); ask again for a fresh one.",
      resolve: (asset, _args, context) => signedUrl(context, asset, "original"),
    }),
    contentUrlExpiresAt: t.field({
      type: "DateTime",
      description: "When `contentUrl` and `thumbnailUrl` stop working.",
      resolve: (asset, _args, context) => signContentPath(context.app.config, { projectId: asset.projectId, assetId: asset.id, variant: "original" }).expiresAt,
    }),
    thumbnailUrl: t.string({
      nullable: true,
      description: `A short-lived signed URL of a WebP preview at most ${THUMBNAIL_MAX_SIDE} pixels on its longer side; images only, null for other modalities.`,
      resolve: (asset, _args, context) => (asset.modality === "IMAGE" ? signedUrl(context, asset, "thumbnail") : null),
    }),
    text: t.field({
      type: [IndexedTextSpanRef],
      description:
        "What the asset was indexed by, in order: a text's chunks (offsets in characters), OCR lines, the transcript and speech segments (times in seconds). " +
        `Up to ${MAX_KEPT_TEXT_CHARS} characters are kept per asset; the whole text is at \`contentUrl\`.`,
      args: {
        offset: t.arg.int({ required: false, defaultValue: 0, description: "Spans to skip." }),
        limit: t.arg.int({ required: false, defaultValue: 100, description: "At most this many spans (1 to 1000)." }),
      },
      resolve: async (asset, args, context) => {
        const offset = args.offset ?? 0;
        const limit = args.limit ?? 100;
        if (offset < 0 || limit < 1 || limit > 1000) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "offset must be 0 or more and limit 1 to 1000");
        return (await readIndexedText(context.app, asset)).slice(offset, offset + limit);
      },
    }),
    error: t.field({ type: "JSON", nullable: true, description: "Why its ingest failed ({ code, message }), for FAILED.", resolve: (asset) => asset.error }),
    createdAt: t.field({ type: "DateTime", description: "When it was first stored.", resolve: (asset) => asset.createdAt }),
  }),
});

/** An absolute URL when the request says where the gateway is (HTTP), else a path (graphql-ws). */
function signedUrl(context: { app: { config: Config }; request?: Request }, asset: Asset, variant: ContentVariant): string {
  const { path } = signContentPath(context.app.config, { projectId: asset.projectId, assetId: asset.id, variant });
  const requestUrl = context.request?.url;
  return requestUrl ? new URL(path, requestUrl).toString() : path;
}

export async function findProjectAsset(context: ProjectContext, id: string): Promise<Asset> {
  const asset = await context.app.db.asset.findFirst({ where: { id, projectId: context.project.id } });
  if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${id} in this project`);
  return asset;
}

builder.queryField("asset", (t) =>
  t.withAuth({ project: true }).field({
    type: AssetRef,
    description: "One asset of the project; NOT_FOUND for another project's.",
    args: { id: t.arg.id({ required: true, description: "The asset's id." }) },
    resolve: (_root, args, context) => findProjectAsset(context, String(args.id)),
  }),
);

builder.queryField("assets", (t) =>
  t.withAuth({ project: true }).connection({
    type: AssetRef,
    description: "The project's assets, newest first.",
    args: {
      modality: t.arg({ type: ModalityEnum, required: false, description: "Only assets of this modality." }),
      status: t.arg({ type: AssetStatusEnum, required: false, description: "Only assets in this state, e.g. FAILED ones to re-index." }),
    },
    resolve: (_root, args, context) => {
      const where = {
        projectId: context.project.id,
        ...(args.modality ? { modality: args.modality } : {}),
        ...(args.status ? { status: args.status } : {}),
      };
      return rowConnection(
        args,
        ({ cursor, skip, take, inverted }) =>
          context.app.db.asset.findMany({
            where,
            cursor,
            skip,
            take,
            orderBy: [{ createdAt: direction(false, inverted) }, { id: direction(false, inverted) }],
          }),
        () => context.app.db.asset.count({ where }),
      );
    },
  }),
);

const IngestInput = builder.inputType("IngestInput", {
  description: "Exactly one of `file`, `url` or `text`.",
  fields: (t) => ({
    file: t.field({ type: "Upload", required: false, description: "A file part of a multipart request (GraphQL multipart request spec)." }),
    url: t.string({ required: false, description: "An http(s) URL to fetch the content from; private addresses are refused." }),
    text: t.string({ required: false, description: "The content itself, as a TEXT asset." }),
    metadata: t.field({ type: "JSON", required: false, description: "A JSON object kept with the asset; search can filter on it." }),
    tags: t.stringList({ required: false, description: "Up to 50 tags of 1 to 100 characters; search can filter on them." }),
    idempotencyKey: t.string({
      required: false,
      description: "1 to 200 characters: a retry with the same key and the same content gets the first answer; other content under a used key is IDEMPOTENCY_CONFLICT.",
    }),
  }),
});

const IngestPayload = builder
  .objectRef<Awaited<ReturnType<typeof ingestContent>>>("IngestPayload")
  .implement({
    description: "The stored asset and the job that indexes it.",
    fields: (t) => ({
      asset: t.field({ type: AssetRef, description: "The asset, PENDING until its job has run.", resolve: (payload) => payload.asset }),
      job: t.field({ type: JobRef, description: "The ingest job; follow it with `jobEvents`.", resolve: (payload) => payload.job }),
    }),
  });

function parseMetadata(value: unknown): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "metadata must be a JSON object");
  }
  return value as Record<string, unknown>;
}

const MAX_TAGS = 50;
const MAX_TAG_LENGTH = 100;

function parseTags(tags: string[] | null | undefined): string[] | undefined {
  if (!tags) return undefined;
  if (tags.length > MAX_TAGS || tags.some((tag) => tag.length === 0 || tag.length > MAX_TAG_LENGTH)) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, `at most ${MAX_TAGS} tags, each 1 to ${MAX_TAG_LENGTH} characters`);
  }
  return [...new Set(tags)];
}

function parseIdempotencyKey(key: string | null | undefined): string | undefined {
  if (key === undefined || key === null) return undefined;
  if (key.length === 0 || key.length > 200) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "idempotencyKey must be 1 to 200 characters");
  return key;
}

builder.mutationField("ingest", (t) =>
  t.withAuth({ project: true }).field({
    type: IngestPayload,
    description: "Stores content (a file, a URL's body or text) as an asset of the project and queues its ingest; the same bytes again return the same asset.",
    args: { input: t.arg({ type: IngestInput, required: true, description: "The content and what to keep with it." }) },
    resolve: async (_root, { input }, context) => {
      const { project } = context;
      const given = [input.file, input.url, input.text].filter((value) => value !== undefined && value !== null);
      if (given.length !== 1) {
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, "give exactly one of `file`, `url` or `text`");
      }
      const options = {
        metadata: parseMetadata(input.metadata),
        tags: parseTags(input.tags),
        idempotencyKey: parseIdempotencyKey(input.idempotencyKey),
      };
      if (typeof input.text === "string") return ingestText(context.app, project.id, input.text, options);
      if (typeof input.url === "string") return ingestFromUrl(context.app, project.id, input.url, options);
      const file = input.file as File | StreamedUpload;
      return ingestUntyped(
        context.app,
        project.id,
        { bytes: uploadStream(file), source: "upload", filename: file.name || undefined, claimedMimeType: file.type || undefined },
        options,
      );
    },
  }),
);

builder.mutationField("reindexAsset", (t) =>
  t.withAuth({ project: true }).field({
    type: IngestPayload,
    description:
      "Queues a new ingest of a FAILED or READY asset from its stored bytes (decode, encode, index), e.g. after a vector-store outage outlasted the retries. " +
      "The asset goes back to PENDING; `job` is the new ingest job. NOT_FOUND when the stored bytes are gone, CONFLICT while an ingest of it is queued or running.",
    args: { id: t.arg.id({ required: true, description: "The asset's id." }) },
    resolve: (_root, args, context) => reindexAsset(context.app, context.project.id, String(args.id)),
  }),
);

/** Uploads arrive as StreamedUploads (read off the socket as they come); a plain File is read through its stream. */
function uploadStream(file: File | StreamedUpload): Readable {
  if (file instanceof StreamedUpload) return file.createReadStream();
  // A JSON request can put any value where a file goes; only a real multipart file part has a stream.
  if (typeof (file as Partial<File>)?.stream !== "function") {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "`file` must be a file part of a multipart request (GraphQL multipart request spec)");
  }
  return Readable.fromWeb(file.stream() as any);
}
