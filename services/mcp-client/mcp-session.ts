import { Readable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ErrorCode as JsonRpcCode, McpError, type CallToolResult, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { safeFetch, type SafeFetchPolicy } from "../assets/safe-fetch.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

export const MCP_CLIENT_INFO = { name: "tessera", version: "0.1.0" };
/** Connecting (initialize) and listing tools have no effects: they are tried this many times in all. */
const SAFE_ATTEMPTS = 3;
const SAFE_RETRY_WAIT_MS = 250;

export type McpTarget = {
  url: string;
  /** Sent with every request (e.g. Authorization); decrypted values. */
  headers?: Record<string, string>;
  /** What errors call the server: its registered name, or its URL's origin. Never the headers. */
  label: string;
};

export type McpSessionOptions = {
  /** The SSRF guard's policy (URL_ALLOW_HOSTS); its timeoutMs and maxBytes bound each HTTP exchange. */
  policy: SafeFetchPolicy;
  /** Longest wait for one MCP request (initialize, a list, a call). */
  timeoutMs: number;
  /** Largest MCP result taken (bytes of its JSON). */
  maxResultBytes: number;
  signal?: AbortSignal;
};

export type McpCallOutput = {
  content: CallToolResult["content"];
  structuredContent: Record<string, unknown> | null;
  isError: boolean;
};

/** A fetch for the SDK's transport that goes through the SSRF guard, and remembers the guard's refusal. */
function guardedFetch(policy: SafeFetchPolicy, failures: { last?: TesseraError }): FetchLike {
  return async (url, init) => {
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    let body: string | Uint8Array | undefined;
    if (typeof init?.body === "string") body = init.body;
    else if (init?.body != null) body = new Uint8Array(await new Response(init.body).arrayBuffer());
    try {
      const response = await safeFetch(String(url), { method: init?.method ?? "GET", headers, body, signal: init?.signal ?? undefined }, policy);
      const empty = response.status === 204 || response.status === 304 || init?.method === "HEAD";
      if (empty) response.body.destroy();
      const stream = empty ? null : (Readable.toWeb(response.body) as unknown as ReadableStream<Uint8Array>);
      // Errors of the body (too large, timed out) are remembered too: the SDK reports them as its own.
      response.body.on("error", (error) => {
        if (error instanceof TesseraError) failures.last = error;
      });
      return new Response(stream, { status: response.status, headers: response.headers });
    } catch (error) {
      if (error instanceof TesseraError) failures.last = error;
      throw error;
    }
  };
}

function isAbort(error: unknown) {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

/**
 * What went wrong, as a TesseraError: the SSRF guard's refusal as it is (URL_NOT_ALLOWED), a body past the size
 * limit as PAYLOAD_TOO_LARGE, anything about reaching the server as MCP_UNREACHABLE, a JSON-RPC error answering a
 * tool call as MCP_TOOL_ERROR, and an answer that is no MCP as MCP_PROTOCOL.
 */
function mcpError(error: unknown, target: McpTarget, stage: "connect" | "list" | "call", failures: { last?: TesseraError }, signal?: AbortSignal): TesseraError {
  if (signal?.aborted) return new TesseraError(ErrorCode.CANCELLED, `the call of MCP server ${target.label} was cancelled`);
  const guard = error instanceof TesseraError ? error : failures.last;
  if (guard) {
    if (guard.code === ErrorCode.URL_NOT_ALLOWED || guard.code === ErrorCode.BAD_USER_INPUT) return guard;
    if (guard.code === ErrorCode.PAYLOAD_TOO_LARGE) {
      return new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `MCP server ${target.label} answered more than the size limit (MCP_MAX_RESULT_BYTES)`, guard.details);
    }
    return new TesseraError(ErrorCode.MCP_UNREACHABLE, `MCP server ${target.label} could not be reached: ${guard.message}`, { server: target.label });
  }
  if (error instanceof StreamableHTTPError) {
    const status = typeof error.code === "number" ? error.code : undefined;
    return new TesseraError(ErrorCode.MCP_UNREACHABLE, `MCP server ${target.label} answered HTTP ${status ?? "error"}`, { server: target.label, status });
  }
  if (error instanceof McpError) {
    if (error.code === JsonRpcCode.RequestTimeout || error.code === JsonRpcCode.ConnectionClosed) {
      return new TesseraError(ErrorCode.MCP_UNREACHABLE, `MCP server ${target.label}: ${error.message}`, { server: target.label });
    }
    if (stage === "call") return new TesseraError(ErrorCode.MCP_TOOL_ERROR, `MCP server ${target.label}: ${error.message}`, { server: target.label, jsonRpcCode: error.code });
    return new TesseraError(ErrorCode.MCP_PROTOCOL, `MCP server ${target.label}: ${error.message}`, { server: target.label, jsonRpcCode: error.code });
  }
  if (isAbort(error) || (error instanceof TypeError && /fetch|network|socket/i.test(error.message))) {
    return new TesseraError(ErrorCode.MCP_UNREACHABLE, `MCP server ${target.label} could not be reached`, { server: target.label });
  }
  // The SDK's schema checks of what came back (a non-MCP body, a malformed result).
  const message = error instanceof Error ? error.message.slice(0, 300) : String(error);
  return new TesseraError(ErrorCode.MCP_PROTOCOL, `MCP server ${target.label} did not answer in MCP: ${message}`, { server: target.label });
}

async function retrying<T>(attempts: number, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      const retryable = error instanceof TesseraError && error.code === ErrorCode.MCP_UNREACHABLE;
      if (!retryable || attempt >= attempts || signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, SAFE_RETRY_WAIT_MS * attempt));
    }
  }
}

/**
 * One connection to another MCP server over Streamable HTTP, through the SSRF guard: initialize, list tools,
 * call tools, close. Connecting and listing are retried while the server is unreachable (they change nothing);
 * a tool call is never repeated here, since a tool may have effects.
 */
export class McpSession {
  private tools?: Tool[];

  private constructor(
    private readonly client: Client,
    private readonly target: McpTarget,
    private readonly options: McpSessionOptions,
    private readonly failures: { last?: TesseraError },
  ) {}

  static async open(target: McpTarget, options: McpSessionOptions): Promise<McpSession> {
    return retrying(SAFE_ATTEMPTS, options.signal, async () => {
      const failures: { last?: TesseraError } = {};
      const client = new Client(MCP_CLIENT_INFO, { capabilities: {} });
      let url: URL;
      try {
        url = new URL(target.url);
      } catch {
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, `${target.label} is not a valid URL`);
      }
      const transport = new StreamableHTTPClientTransport(url, {
        fetch: guardedFetch(options.policy, failures),
        requestInit: { headers: target.headers ?? {} },
        // A stateless server has no stream to come back to; no reconnection loops in a step.
        reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
      });
      try {
        await client.connect(transport, { timeout: options.timeoutMs, signal: options.signal });
      } catch (error) {
        await client.close().catch(() => {});
        throw mcpError(error, target, "connect", failures, options.signal);
      }
      return new McpSession(client, target, options, failures);
    });
  }

  /** The server's tools, all pages, listed once per session. */
  async listTools(): Promise<Tool[]> {
    if (this.tools) return this.tools;
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await retrying(SAFE_ATTEMPTS, this.options.signal, async () => {
        try {
          return await this.client.listTools(cursor ? { cursor } : undefined, { timeout: this.options.timeoutMs, signal: this.options.signal });
        } catch (error) {
          throw mcpError(error, this.target, "list", this.failures, this.options.signal);
        }
      });
      tools.push(...page.tools);
      cursor = page.nextCursor;
      if (tools.length > 1000) throw new TesseraError(ErrorCode.MCP_PROTOCOL, `MCP server ${this.target.label} lists more than 1000 tools`);
    } while (cursor);
    this.tools = tools;
    return tools;
  }

  /** Calls a tool once. A result with `isError` comes back as such; the caller decides whether it fails. */
  async callTool(name: string, args: Record<string, unknown>, signal?: AbortSignal): Promise<McpCallOutput> {
    const combined = signal && this.options.signal ? AbortSignal.any([signal, this.options.signal]) : (signal ?? this.options.signal);
    let result: CallToolResult;
    try {
      result = (await this.client.callTool({ name, arguments: args }, undefined, { timeout: this.options.timeoutMs, signal: combined })) as CallToolResult;
    } catch (error) {
      throw mcpError(error, this.target, "call", this.failures, combined);
    }
    const output: McpCallOutput = {
      content: Array.isArray(result.content) ? result.content : [],
      structuredContent: (result.structuredContent as Record<string, unknown> | undefined) ?? null,
      isError: result.isError === true,
    };
    const bytes = Buffer.byteLength(JSON.stringify(output), "utf8");
    if (bytes > this.options.maxResultBytes) {
      throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `MCP server ${this.target.label}: the result of ${name} is ${bytes} bytes, more than MCP_MAX_RESULT_BYTES`, {
        limit: this.options.maxResultBytes,
        actual: bytes,
      });
    }
    return output;
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => {});
  }
}

/** The text parts of a tool's result, joined: what an MCP_TOOL_ERROR says. */
export function textOf(output: Pick<McpCallOutput, "content">, max = 1000): string {
  return output.content
    .flatMap((part) => (part.type === "text" ? [part.text] : []))
    .join("\n")
    .slice(0, max);
}
