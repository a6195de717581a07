import path from "node:path";
import type { Readable } from "node:stream";
import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { findIngestByIdempotencyKey, ingestContent, type IngestDependencies, type IngestOptions, type IngestResult } from "./ingest-service.ts";
import { INSPECT_ENDS_BYTES, inspectMedia } from "./media-inspector.ts";
import { textMimeType } from "./media-sniffer.ts";
import { fetchPolicy, safeFetch } from "./safe-fetch.ts";

/** The caps on what comes with the content, checked before any byte is read or stored. */
export type IngestInputLimits = Pick<Config, "INGEST_MAX_METADATA_BYTES" | "INGEST_MAX_TAGS">;

/** An ingest of text reads the input caps too. */
export type TextIngestDependencies = IngestDependencies & { config: IngestDependencies["config"] & IngestInputLimits };

/** An ingest that inspects the bytes, and may fetch them, reads more of the configuration (media and fetch limits). */
export type UntypedIngestDependencies = IngestDependencies & { config: Config };

/** Longest tag, in characters. */
const MAX_TAG_CHARS = 100;

/**
 * Metadata and tags are stored on the asset row and copied onto every vector it writes (thousands for a long
 * text), so their size is capped before anything else is done: a refusal stores nothing and fetches nothing.
 */
export function checkIngestOptions(limits: IngestInputLimits, options: IngestOptions) {
  const tooLarge = (message: string, variable: string, limit: number, actual: number) =>
    new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `${message} (${variable})`, { variable, limit, actual });
  if (options.metadata !== undefined) {
    const bytes = Buffer.byteLength(JSON.stringify(options.metadata), "utf8");
    const limit = limits.INGEST_MAX_METADATA_BYTES;
    if (bytes > limit) throw tooLarge(`the metadata is ${bytes} bytes of JSON; at most ${limit} are taken`, "INGEST_MAX_METADATA_BYTES", limit, bytes);
  }
  const tags = options.tags ?? [];
  if (tags.length > limits.INGEST_MAX_TAGS) {
    throw tooLarge(`${tags.length} tags given; at most ${limits.INGEST_MAX_TAGS} are taken`, "INGEST_MAX_TAGS", limits.INGEST_MAX_TAGS, tags.length);
  }
  const long = tags.find((tag) => tag.length > MAX_TAG_CHARS);
  if (long !== undefined) {
    throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `a tag has ${long.length} characters; at most ${MAX_TAG_CHARS} are taken`, {
      limit: MAX_TAG_CHARS,
      actual: long.length,
    });
  }
}

/** Bytes whose type is not known yet: an upload or a fetched URL. */
export type UntypedSource = {
  bytes: Readable;
  source: "upload" | "url";
  /** What the client or the remote server said; a hint, never trusted for the type. */
  filename?: string;
  claimedMimeType?: string;
  sourceUrl?: string;
};

/**
 * Streams the bytes into the blob store, then decides what they are from the
 * stored file (magic numbers, then sharp or ffprobe) before any row is written.
 * Refused content leaves nothing behind: ingestContent removes the blob.
 */
export async function ingestUntyped(app: UntypedIngestDependencies, projectId: string, input: UntypedSource, options: IngestOptions): Promise<IngestResult> {
  const { config } = app;
  checkIngestOptions(config, options);
  return ingestContent(
    app,
    projectId,
    { bytes: input.bytes, modality: "TEXT", mimeType: "application/octet-stream", source: input.source, filename: input.filename, sourceUrl: input.sourceUrl },
    options,
    async (blob) => {
      if (blob.byteSize === 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "the content is empty");
      return inspectMedia(
        await app.blobs.localPath(blob.sha256),
        { filename: input.filename, mimeType: input.claimedMimeType },
        { maxImagePixels: config.MAX_IMAGE_PIXELS, toolTimeoutMs: config.MEDIA_TOOL_TIMEOUT_MS },
        blob.ends && { size: blob.byteSize, ...blob.ends },
      );
    },
    { keepEnds: INSPECT_ENDS_BYTES },
  );
}

/** Fetches a URL through the SSRF guard and ingests what it returns. */
export async function ingestFromUrl(app: UntypedIngestDependencies, projectId: string, url: string, options: IngestOptions): Promise<IngestResult> {
  checkIngestOptions(app.config, options);
  // A retried request for the URL the key was first used with does not fetch again; any other URL (or one that
  // redirected) is fetched and its bytes compared by ingestContent: other content is IDEMPOTENCY_CONFLICT.
  if (options.idempotencyKey) {
    const previous = await findIngestByIdempotencyKey(app, projectId, options.idempotencyKey);
    if (previous && previous.asset.source === "url" && previous.asset.sourceUrl === url) return previous;
  }
  const response = await safeFetch(url, { headers: { accept: "*/*" } }, fetchPolicy(app.config));
  if (!response.ok) {
    response.body.destroy();
    throw new TesseraError(ErrorCode.FETCH_FAILED, `${response.url} answered HTTP ${response.status}`, { url: response.url, status: response.status });
  }
  const filename = path.posix.basename(new URL(response.url).pathname) || undefined;
  return ingestUntyped(
    app,
    projectId,
    {
      bytes: response.body,
      source: "url",
      sourceUrl: response.url,
      filename: filename ? decodeURIComponentSafe(filename) : undefined,
      claimedMimeType: response.headers.get("content-type") ?? undefined,
    },
    options,
  );
}

export async function ingestText(app: TextIngestDependencies, projectId: string, text: string, options: IngestOptions): Promise<IngestResult> {
  checkIngestOptions(app.config, options);
  if (text.length === 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "text is empty");
  return ingestContent(
    app,
    projectId,
    { bytes: Buffer.from(text, "utf8"), modality: "TEXT", mimeType: textMimeType(text), source: "text", media: { characters: text.length } },
    options,
  );
}

function decodeURIComponentSafe(value: string) {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
