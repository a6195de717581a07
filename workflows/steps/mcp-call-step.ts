import { Readable } from "node:stream";
import { z } from "zod";
import { ingestUntyped } from "../../services/assets/ingest-sources.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { openMcpServer } from "../../services/mcp-client/mcp-servers.ts";
import { textOf } from "../../services/mcp-client/mcp-session.ts";
import { defineStepType } from "./step-type.ts";

/**
 * Calls one tool of another MCP server (Streamable HTTP), by the name the project registered it under
 * (registerMcpServer: its headers, such as a key, are sent) or by URL. Every connection goes through the SSRF
 * guard (URL_ALLOW_HOSTS opens a private host), within MCP_CALL_TIMEOUT_MS and MCP_MAX_RESULT_BYTES.
 */
export const mcpCallStep = defineStepType({
  uses: "mcp.call",
  description:
    "Call a tool of an MCP server (Streamable HTTP), registered by name (registerMcpServer) or given by URL; private addresses are refused (URL_ALLOW_HOSTS).",
  with: z
    .object({
      server: z.string().min(1).describe("A registered MCP server's name, or an http(s) URL of one."),
      tool: z.string().min(1).max(128),
      arguments: z.record(z.string(), z.unknown()).default({}),
      failOnError: z.boolean().default(true).describe("Fail the step with MCP_TOOL_ERROR when the tool answers isError."),
      keepMedia: z.boolean().default(false).describe("Ingest the images and audio the tool returns as assets; their parts then carry assetId instead of data."),
    })
    .strict(),
  output: z
    .object({
      content: z.array(z.unknown()).describe("The tool's content parts (text, image, audio, resource links)."),
      structuredContent: z.record(z.string(), z.unknown()).nullable(),
      isError: z.boolean(),
      assets: z.array(z.object({ assetId: z.string(), jobId: z.string(), mimeType: z.string() }).strict()).optional().describe("With keepMedia: the assets made of the returned media, in order."),
    })
    .strict(),
  async run(input, context) {
    const session = await openMcpServer(context.app, context.projectId, input.server, context.signal);
    try {
      const output = await session.callTool(input.tool, input.arguments, context.signal);
      if (output.isError && input.failOnError) {
        throw new TesseraError(ErrorCode.MCP_TOOL_ERROR, `MCP tool ${input.tool} failed: ${textOf(output, 500) || "no message"}`, {
          server: input.server.includes("://") ? new URL(input.server).origin : input.server,
          tool: input.tool,
        });
      }
      if (!input.keepMedia) return output;
      // Each media part becomes an asset, once however often the step runs (its row and the part's index are the key).
      const assets: Array<{ assetId: string; jobId: string; mimeType: string }> = [];
      const content: unknown[] = [];
      for (const [index, part] of output.content.entries()) {
        if ((part.type !== "image" && part.type !== "audio") || typeof part.data !== "string") {
          content.push(part);
          continue;
        }
        const { asset, job } = await ingestUntyped(
          context.app,
          context.projectId,
          { bytes: Readable.from([Buffer.from(part.data, "base64")]), source: "upload", claimedMimeType: part.mimeType, filename: `${input.tool}-${index}` },
          { idempotencyKey: `workflow-step:${context.stepRunId}:mcp-media:${index}`, tags: ["mcp"] },
        );
        assets.push({ assetId: asset.id, jobId: job.id, mimeType: asset.mimeType });
        content.push({ type: part.type, mimeType: part.mimeType, assetId: asset.id });
      }
      return { ...output, content: content as typeof output.content, assets };
    } finally {
      await session.close();
    }
  },
});
