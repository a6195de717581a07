import type { Config } from "../core/config.ts";
import type { Database, McpServer } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { fetchPolicy } from "../assets/safe-fetch.ts";
import { McpSession, type McpSessionOptions, type McpTarget } from "./mcp-session.ts";
import { mcpSecretBox } from "./secret-box.ts";

/** What the client reads of the process: the database and the configuration (MCP_*, URL_ALLOW_HOSTS). */
export type McpClientDependencies = { db: Database; config: Config };

/** What a caller sees of a registered server: never a header's value. */
export type McpServerView = { id: string; name: string; url: string; headerNames: string[]; createdAt: Date; updatedAt: Date };

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
/** Set by the transport itself; a registered value would break the exchange. */
const RESERVED_HEADERS = new Set(["host", "content-length", "content-type", "accept", "connection", "transfer-encoding", "mcp-session-id", "mcp-protocol-version"]);
const MAX_HEADERS = 20;
const MAX_HEADER_VALUE_CHARS = 8192;
const MAX_SERVERS_PER_PROJECT = 100;

function view(row: McpServer): McpServerView {
  return { id: row.id, name: row.name, url: row.url, headerNames: Object.keys(row.headers as Record<string, string>), createdAt: row.createdAt, updatedAt: row.updatedAt };
}

function checkUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "url is not a valid URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new TesseraError(ErrorCode.URL_NOT_ALLOWED, `only http and https MCP servers, not ${parsed.protocol}`);
  if (parsed.username || parsed.password) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "put credentials in headers, not in the URL");
  return parsed.href;
}

function checkHeaders(headers: unknown): Record<string, string> {
  if (headers === undefined || headers === null) return {};
  if (typeof headers !== "object" || Array.isArray(headers)) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "headers must be a JSON object of strings");
  const entries = Object.entries(headers as Record<string, unknown>);
  if (entries.length > MAX_HEADERS) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `at most ${MAX_HEADERS} headers`);
  const checked: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (!HEADER_NAME.test(name)) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `${JSON.stringify(name.slice(0, 100))} is not a header name`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `the ${name} header is set by the transport`);
    if (typeof value !== "string" || value.length > MAX_HEADER_VALUE_CHARS || /[\r\n\0]/.test(value)) {
      throw new TesseraError(ErrorCode.BAD_USER_INPUT, `header ${name}: a string of at most ${MAX_HEADER_VALUE_CHARS} characters on one line`);
    }
    checked[name.toLowerCase()] = value;
  }
  return checked;
}

/** Registers (or replaces) a named MCP server of the project; header values are sealed before they are stored. */
export async function registerMcpServer(
  { db, config }: McpClientDependencies,
  projectId: string,
  input: { name: string; url: string; headers?: unknown },
): Promise<McpServerView> {
  if (!NAME.test(input.name)) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "name: 1 to 63 letters, digits, - or _, starting with a letter or digit");
  const url = checkUrl(input.url);
  const headers = checkHeaders(input.headers);
  const box = Object.keys(headers).length ? mcpSecretBox(config) : null;
  const sealed = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, box!.seal(value)]));
  const existing = await db.mcpServer.findUnique({ where: { projectId_name: { projectId, name: input.name } }, select: { id: true } });
  if (!existing && (await db.mcpServer.count({ where: { projectId } })) >= MAX_SERVERS_PER_PROJECT) {
    throw new TesseraError(ErrorCode.QUOTA_EXCEEDED, `a project registers at most ${MAX_SERVERS_PER_PROJECT} MCP servers`);
  }
  const row = await db.mcpServer.upsert({
    where: { projectId_name: { projectId, name: input.name } },
    create: { projectId, name: input.name, url, headers: sealed },
    update: { url, headers: sealed },
  });
  return view(row);
}

export async function listMcpServers(db: Database, projectId: string): Promise<McpServerView[]> {
  const rows = await db.mcpServer.findMany({ where: { projectId }, orderBy: { name: "asc" } });
  return rows.map(view);
}

export async function removeMcpServer(db: Database, projectId: string, name: string): Promise<boolean> {
  const { count } = await db.mcpServer.deleteMany({ where: { projectId, name } });
  if (count === 0) throw new TesseraError(ErrorCode.NOT_FOUND, `no MCP server "${name}" in this project`);
  return true;
}

/** A registered name (with its headers, decrypted) or a URL (no headers), as something to connect to. */
export async function resolveMcpTarget({ db, config }: McpClientDependencies, projectId: string, server: string): Promise<McpTarget> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(server)) {
    const url = checkUrl(server);
    return { url, label: new URL(url).origin };
  }
  const row = await db.mcpServer.findUnique({ where: { projectId_name: { projectId, name: server } } });
  if (!row) throw new TesseraError(ErrorCode.NOT_FOUND, `no MCP server "${server}" is registered in this project (registerMcpServer)`);
  const sealed = row.headers as Record<string, string>;
  const box = Object.keys(sealed).length ? mcpSecretBox(config) : null;
  const headers = Object.fromEntries(Object.entries(sealed).map(([name, value]) => [name, box!.open(value)]));
  return { url: row.url, headers, label: row.name };
}

export function mcpSessionOptions(config: Config, signal?: AbortSignal): McpSessionOptions {
  return {
    policy: { ...fetchPolicy(config), timeoutMs: config.MCP_CALL_TIMEOUT_MS, maxBytes: config.MCP_MAX_RESULT_BYTES },
    timeoutMs: config.MCP_CALL_TIMEOUT_MS,
    maxResultBytes: config.MCP_MAX_RESULT_BYTES,
    signal,
  };
}

/** Connects to a project's MCP server, by registered name or URL, through the SSRF guard. */
export async function openMcpServer(deps: McpClientDependencies, projectId: string, server: string, signal?: AbortSignal): Promise<McpSession> {
  return McpSession.open(await resolveMcpTarget(deps, projectId, server), mcpSessionOptions(deps.config, signal));
}
