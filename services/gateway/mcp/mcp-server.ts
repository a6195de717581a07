import { Readable } from "node:stream";
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult, ReadResourceResult } from "@modelcontextprotocol/sdk/types.js";
import { ErrorCode as McpErrorCode, ListResourcesRequestSchema, McpError } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { ingestFromUrl, ingestText, ingestUntyped } from "../../assets/ingest-sources.ts";
import { mediaWithoutText, readIndexedText } from "../../assets/asset-text.ts";
import type { AppContext } from "../../app/app-context.ts";
import type { ApiKeyScope } from "../../core/api-keys.ts";
import { Modality, type Asset, type Project } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { crossModalSearch, MAX_SEARCH_LIMIT, type SearchHit, type SearchQuery } from "../../search/cross-modal-search.ts";
import { registerWorkflowTools } from "./workflow-tools.ts";

export const MCP_SERVER_NAME = "tessera";
export const MCP_SERVER_VERSION = "0.1.0";
/** Images up to this size come back from `search` as image content too. */
const INLINE_IMAGE_MAX_BYTES = 256 * 1024;
/** `get_asset` returns a text asset's text up to this many characters. */
const MAX_TEXT_CHARS = 100_000;
/** A resource read returns an asset's bytes up to this size; larger ones are refused. */
const MAX_RESOURCE_BYTES = 10 * 1024 * 1024;
const RESOURCE_PAGE_SIZE = 50;
/** Base64 `data` given to `ingest`; larger content goes by URL or the GraphQL upload. */
export const MAX_INGEST_DATA_BYTES = 16 * 1024 * 1024;

const modalities = z.enum([Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.VIDEO]);

const searchInput = {
  text: z.string().optional().describe("Text to search for (any modality matches)."),
  assetId: z.string().optional().describe("Find assets like this one (it is not among its own hits)."),
  modalities: z.array(modalities).optional().describe("Only hits of these modalities."),
  limit: z.number().int().min(1).max(MAX_SEARCH_LIMIT).optional().describe(`1 to ${MAX_SEARCH_LIMIT}, default 10.`),
};
const searchOutput = {
  hits: z.array(
    z.object({
      assetId: z.string(),
      modality: modalities,
      score: z.number(),
      title: z.string().optional(),
      snippet: z.string().optional(),
      segments: z
        .array(z.object({ start: z.number(), end: z.number(), text: z.string(), score: z.number() }))
        .optional()
        .describe("Where in an audio or video hit the text matched, in seconds (spoken words included), best first."),
    }),
  ),
};

const ingestInput = {
  text: z.string().optional().describe("Text to store and index."),
  url: z.string().optional().describe("An http(s) URL to fetch (public hosts only, unless the server allows more)."),
  data: z.string().optional().describe("Base64 bytes of an image, audio clip, video, PDF or text file."),
  mimeType: z.string().optional().describe("The MIME type of `data` (a hint; the bytes decide)."),
  filename: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()).optional().describe("A JSON object stored with the asset, searchable by filters."),
  tags: z.array(z.string().min(1)).optional().describe("Each 1 to 100 characters."),
  idempotencyKey: z.string().min(1).max(200).optional().describe("A retry with the same key returns the first ingest."),
};
const ingestOutput = { assetId: z.string(), jobId: z.string(), status: z.string() };

const assetOutput = {
  id: z.string(),
  modality: modalities,
  status: z.string(),
  mimeType: z.string(),
  byteSize: z.number(),
  source: z.string(),
  sourceUrl: z.string().nullable(),
  filename: z.string().nullable(),
  tags: z.array(z.string()),
  metadata: z.unknown(),
  media: z.unknown(),
  error: z.unknown().nullable(),
  createdAt: z.string(),
  text: z.string().nullable().describe("A text asset's text, or what another asset was indexed by (PDF text, OCR lines, a transcript); the first 100,000 characters; null when there is none."),
};

export type McpCaller = { app: AppContext; project: Project };
/** The caller of one request: the key's hash names its requests for cancellation; the signal ends with the request. */
export type McpRequestCaller = McpCaller & { keyHash: string; scopes: readonly ApiKeyScope[]; signal?: AbortSignal };

async function findProjectAsset({ app, project }: McpCaller, id: string): Promise<Asset> {
  const asset = await app.db.asset.findFirst({ where: { id, projectId: project.id } });
  if (!asset) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${id} in this project`);
  return asset;
}

/** A TesseraError as a tool result the model can read; anything else is logged and said as INTERNAL. */
function toolError(caller: McpCaller, error: unknown): CallToolResult {
  if (error instanceof TesseraError) {
    return { isError: true, content: [{ type: "text", text: `${error.code}: ${error.message}` }], _meta: { code: error.code } };
  }
  caller.app.logger.error({ err: error }, "mcp: a tool failed");
  return { isError: true, content: [{ type: "text", text: `${ErrorCode.INTERNAL}: the server's logs have the details` }], _meta: { code: ErrorCode.INTERNAL } };
}

async function guarded(caller: McpCaller, run: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await run();
  } catch (error) {
    return toolError(caller, error);
  }
}

function titleOf(asset: Asset): string | undefined {
  const title = (asset.metadata as Record<string, unknown> | null)?.title;
  return typeof title === "string" ? title : (asset.filename ?? undefined);
}

function isPlainText(asset: Asset) {
  return asset.modality === Modality.TEXT && asset.mimeType.startsWith("text/");
}

async function searchAssets(caller: McpCaller, input: { text?: string; assetId?: string; modalities?: Modality[]; limit?: number }) {
  const { app, project } = caller;
  const given = [input.text, input.assetId].filter((value) => value !== undefined);
  if (given.length !== 1) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "give exactly one of `text` or `assetId`");
  const query: SearchQuery = input.text !== undefined ? { text: input.text } : { assetId: input.assetId! };
  let hits: SearchHit[];
  try {
    hits = await crossModalSearch(app.vectorStore, app.models, project.id, {
      query,
      modalities: input.modalities,
      limit: input.limit,
      limits: app.config,
    }, app);
  } catch (error) {
    // As the GraphQL `search`: no vectors is NOT_FOUND for an unknown asset, CONFLICT for one not indexed yet.
    if (error instanceof TesseraError && error.code === ErrorCode.CONFLICT && "assetId" in query) await findProjectAsset(caller, query.assetId);
    if (error instanceof TesseraError) throw error;
    app.logger.error({ err: error }, "search failed in the vector store");
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `the vector store (${app.vectorStore.kind}) did not answer; retry later`);
  }
  const assets = await app.db.asset.findMany({ where: { projectId: project.id, id: { in: hits.map((hit) => hit.assetId) } } });
  const byId = new Map(assets.map((asset) => [asset.id, asset]));
  return hits.flatMap((hit) => {
    const asset = byId.get(hit.assetId);
    return asset ? [{ hit, asset }] : [];
  });
}

/** A plain text asset's text; for the others the text they were indexed by (PDF text, OCR lines, transcript), joined. */
async function assetText(caller: McpCaller, asset: Asset): Promise<string | null> {
  if (isPlainText(asset)) {
    const bytes = await caller.app.blobs.read(asset.sha256);
    return bytes.subarray(0, MAX_TEXT_CHARS * 4).toString("utf8").slice(0, MAX_TEXT_CHARS);
  }
  const spans = (await readIndexedText(caller.app, asset)).filter((span) => span.text.trim() !== "");
  return spans.length ? spans.map((span) => span.text).join("\n").slice(0, MAX_TEXT_CHARS) : null;
}

function assetUri(id: string) {
  return `tessera://assets/${id}`;
}

/**
 * The MCP server of one request: Tessera's search, ingest and assets for the caller's project, and its opt-in
 * workflows. Stateless: a new one per HTTP request, so any gateway replica answers any request (nothing lives
 * in one process between them).
 */
export async function createMcpServer(caller: McpRequestCaller): Promise<McpServer> {
  const { app, project } = caller;
  const server = new McpServer(
    { name: MCP_SERVER_NAME, version: MCP_SERVER_VERSION, title: "Tessera" },
    {
      capabilities: { logging: {}, tools: { listChanged: false }, resources: { listChanged: false } },
      instructions: "Tessera: cross-modal search over this project's text, images, audio and video; ingest new content; read assets.",
    },
  );

  server.registerTool(
    "search",
    {
      title: "Search assets",
      description: "Cross-modal search in the project: text (or an asset's id) finds text, images, audio and video alike. Give `text` or `assetId`.",
      inputSchema: searchInput,
      outputSchema: searchOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (input) =>
      guarded(caller, async () => {
        const found = await searchAssets(caller, input);
        const hits = found.map(({ hit, asset }) => ({
          assetId: hit.assetId,
          modality: hit.modality,
          score: hit.score,
          ...(titleOf(asset) !== undefined ? { title: titleOf(asset) } : {}),
          ...(hit.snippet ? { snippet: hit.snippet } : {}),
          ...(hit.segments.length ? { segments: hit.segments } : {}),
        }));
        const images = await Promise.all(
          found
            .filter(({ asset }) => asset.modality === Modality.IMAGE && asset.byteSize <= INLINE_IMAGE_MAX_BYTES)
            .map(async ({ asset }) => {
              const bytes = await app.blobs.read(asset.sha256).catch(() => null);
              return bytes ? [{ type: "image" as const, data: bytes.toString("base64"), mimeType: asset.mimeType }] : [];
            }),
        );
        return { content: [{ type: "text", text: JSON.stringify({ hits }) }, ...images.flat()], structuredContent: { hits } };
      }),
  );

  const ingestTool = server.registerTool(
    "ingest",
    {
      title: "Ingest content",
      description: "Stores and indexes new content in the project: exactly one of `text`, `url` or `data` (base64, with `mimeType`). Indexing runs in the background; `get_asset` shows when it is READY.",
      inputSchema: ingestInput,
      outputSchema: ingestOutput,
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    (input) =>
      guarded(caller, async () => {
        const given = [input.text, input.url, input.data].filter((value) => value !== undefined);
        if (given.length !== 1) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "give exactly one of `text`, `url` or `data`");
        // The caps on metadata and tags are checked by the ingest itself (checkIngestOptions), as for GraphQL.
        const options = { metadata: input.metadata, tags: input.tags && [...new Set(input.tags)], idempotencyKey: input.idempotencyKey };
        let result;
        if (input.text !== undefined) result = await ingestText(app, project.id, input.text, options);
        else if (input.url !== undefined) result = await ingestFromUrl(app, project.id, input.url, options);
        else {
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(input.data!.replace(/\s+/g, ""))) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "`data` is not base64");
          const bytes = Buffer.from(input.data!, "base64");
          if (bytes.byteLength > MAX_INGEST_DATA_BYTES) {
            throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `\`data\` holds ${bytes.byteLength} bytes; at most ${MAX_INGEST_DATA_BYTES} go inline (send a URL instead)`);
          }
          result = await ingestUntyped(
            app,
            project.id,
            { bytes: Readable.from([bytes]), source: "upload", filename: input.filename, claimedMimeType: input.mimeType },
            options,
          );
        }
        const output = { assetId: result.asset.id, jobId: result.job.id, status: result.asset.status };
        return { content: [{ type: "text", text: JSON.stringify(output) }], structuredContent: output };
      }),
  );

  server.registerTool(
    "get_asset",
    {
      title: "Get an asset",
      description: "An asset's status (PENDING, PROCESSING, READY, FAILED), metadata, what decoding found, and a text asset's text.",
      inputSchema: { id: z.string().describe("The asset's id.") },
      outputSchema: assetOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ id }) =>
      guarded(caller, async () => {
        const asset = await findProjectAsset(caller, id);
        const output = {
          id: asset.id,
          modality: asset.modality,
          status: asset.status,
          mimeType: asset.mimeType,
          byteSize: asset.byteSize,
          source: asset.source,
          sourceUrl: asset.sourceUrl,
          filename: asset.filename,
          tags: asset.tags,
          metadata: asset.metadata,
          media: mediaWithoutText(asset.media),
          error: asset.error ?? null,
          createdAt: asset.createdAt.toISOString(),
          text: await assetText(caller, asset),
        };
        return { content: [{ type: "text", text: JSON.stringify(output) }], structuredContent: output };
      }),
  );

  server.registerResource(
    "asset",
    new ResourceTemplate("tessera://assets/{id}", { list: undefined }),
    { title: "Tessera asset", description: "A text asset as text; images, audio and video as blobs with their MIME type." },
    async (uri, { id }): Promise<ReadResourceResult> => {
      const asset = await app.db.asset.findFirst({ where: { id: String(id), projectId: project.id } });
      if (!asset) throw new McpError(-32002, `Resource not found: no asset ${String(id)} in this project`, { uri: uri.href });
      if (asset.byteSize > MAX_RESOURCE_BYTES) {
        throw new McpError(McpErrorCode.InvalidParams, `asset ${asset.id} is ${asset.byteSize} bytes; resources are read up to ${MAX_RESOURCE_BYTES}`);
      }
      const bytes = await app.blobs.read(asset.sha256);
      if (isPlainText(asset)) return { contents: [{ uri: uri.href, mimeType: asset.mimeType, text: bytes.toString("utf8") }] };
      return { contents: [{ uri: uri.href, mimeType: asset.mimeType, blob: bytes.toString("base64") }] };
    },
  );

  // resources/list over the project's assets, newest first, a page at a time (the cursor is the last asset's id).
  server.server.setRequestHandler(ListResourcesRequestSchema, async (request) => {
    const cursor = request.params?.cursor;
    if (cursor !== undefined && !(await app.db.asset.findFirst({ where: { id: cursor, projectId: project.id }, select: { id: true } }))) {
      throw new McpError(McpErrorCode.InvalidParams, "unknown cursor");
    }
    const assets = await app.db.asset.findMany({
      where: { projectId: project.id },
      cursor: cursor ? { id: cursor } : undefined,
      skip: cursor ? 1 : 0,
      take: RESOURCE_PAGE_SIZE + 1,
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
    });
    const page = assets.slice(0, RESOURCE_PAGE_SIZE);
    return {
      resources: page.map((asset) => ({
        uri: assetUri(asset.id),
        name: titleOf(asset) ?? asset.id,
        mimeType: asset.mimeType,
        size: asset.byteSize,
        description: `${asset.modality.toLowerCase()} asset, ${asset.status.toLowerCase()}`,
      })),
      ...(assets.length > RESOURCE_PAGE_SIZE ? { nextCursor: page.at(-1)!.id } : {}),
    };
  });

  // Tools that change the project need the key's `write` scope, as GraphQL's mutations do: a read-only key is
  // not offered them (not listed, and a call is refused as an unknown tool).
  if (caller.scopes.includes("write")) {
    await registerWorkflowTools(server, caller, new Set(["search", "ingest", "get_asset"]), caller.signal);
  } else {
    ingestTool.remove();
  }
  return server;
}
