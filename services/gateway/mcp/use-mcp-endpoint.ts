import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Plugin } from "graphql-yoga";
import type { AppContext } from "../../app/app-context.ts";
import type { Caller } from "../../core/api-keys.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { RequestRateLimits } from "../../limits/request-rate-limits.ts";
import type { GatewayContext } from "../context.ts";
import { createMcpServer, MAX_INGEST_DATA_BYTES } from "./mcp-server.ts";
import { isAllowedHost, isAllowedOrigin, type HostAllowList } from "./request-guard.ts";

export const MCP_PATH = "/mcp";
/** An `ingest` with the largest inline data, as base64 in JSON, plus room for the rest of the message. */
const MAX_REQUEST_BYTES = Math.ceil((MAX_INGEST_DATA_BYTES * 4) / 3) + 1024 * 1024;

export type McpEndpointOptions = {
  app: AppContext;
  /** The gateway's key lookup (cached, shared with GraphQL). */
  callerOf: (request: Request) => Promise<Caller | null>;
};

function jsonRpcError(status: number, code: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The Host and Origin allowed: the localhost forms, MCP_ALLOWED_HOSTS, and the host of PUBLIC_URL when the configuration has one. */
export function hostAllowList(config: AppContext["config"]): HostAllowList {
  const hosts = [...config.MCP_ALLOWED_HOSTS];
  const publicUrl = (config as { PUBLIC_URL?: unknown }).PUBLIC_URL;
  if (typeof publicUrl === "string" && URL.canParse(publicUrl)) hosts.push(new URL(publicUrl).host);
  return { hosts };
}

/**
 * Tessera as an MCP server (Streamable HTTP, stateless) at /mcp on the gateway: Host and Origin checked against
 * DNS rebinding, the same API keys as GraphQL (401 with WWW-Authenticate without one), the same per-project rate
 * limit (the per-address one runs before, in useRateLimits), then one MCP server per request for the key's project.
 */
export function useMcpEndpoint({ app, callerOf }: McpEndpointOptions): Plugin<GatewayContext> {
  const limits = new RequestRateLimits(app);
  const allow = hostAllowList(app.config);

  async function handle(request: Request): Promise<Response> {
    const host = request.headers.get("host");
    if (!host || !isAllowedHost(host, allow)) return jsonRpcError(403, -32000, "Forbidden: this Host is not allowed (MCP_ALLOWED_HOSTS)");
    if (!isAllowedOrigin(request.headers.get("origin"), allow)) return jsonRpcError(403, -32000, "Forbidden: this Origin is not allowed (MCP_ALLOWED_HOSTS)");
    // Stateless: no session, so no server-sent stream to open (GET) and none to end (DELETE).
    if (request.method !== "POST") return jsonRpcError(405, -32000, "Method not allowed: this server is stateless; POST JSON-RPC messages", { allow: "POST" });

    const hasKey = /^Bearer\s+\S+/i.test(request.headers.get("authorization") ?? "");
    const caller = await callerOf(request);
    if (!caller) {
      const challenge = hasKey ? 'Bearer realm="tessera", error="invalid_token"' : 'Bearer realm="tessera"';
      return jsonRpcError(401, -32001, "Unauthorized: send `Authorization: Bearer <Tessera API key>`", { "www-authenticate": challenge });
    }
    try {
      await limits.countProject(caller.project.id);
    } catch (error) {
      if (error instanceof TesseraError && error.code === ErrorCode.RATE_LIMITED) {
        return jsonRpcError(429, -32000, error.message, { "retry-after": String(error.details?.retryAfterSeconds ?? 1) });
      }
      throw error;
    }

    // Everything here reads the project (search, assets), as GraphQL's queries do: a key without `read` is refused.
    if (!caller.scopes.includes("read")) {
      return jsonRpcError(403, -32001, "Forbidden: this API key lacks the `read` scope the MCP endpoint needs");
    }
    const server = await createMcpServer({ app, project: caller.project, keyHash: caller.keyHash, scopes: caller.scopes, signal: request.signal });
    // Answers as a server-sent event stream, so a long tool call (a workflow) can send progress before its result.
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: false,
      maxRequestBodySize: MAX_REQUEST_BYTES,
    });
    await server.connect(transport);
    let response: Response;
    try {
      response = await transport.handleRequest(request);
    } catch (error) {
      await server.close().catch(() => {});
      throw error;
    }
    if (!response.body) {
      await server.close().catch(() => {});
      return response;
    }
    // The request's server lives until its stream ends (every answer sent) or the client leaves.
    const close = () => void server.close().catch(() => {});
    const body = response.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: close }));
    request.signal.addEventListener("abort", close, { once: true });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  return {
    async onRequest({ request, url, endResponse }) {
      if (url.pathname !== MCP_PATH) return;
      try {
        endResponse(await handle(request));
      } catch (error) {
        app.logger.error({ err: error }, "mcp: the request failed");
        endResponse(jsonRpcError(500, -32603, "Internal error: the server's logs have the details"));
      }
    },
  };
}
