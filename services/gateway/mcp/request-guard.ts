/**
 * Which Host and Origin headers the MCP endpoint answers (DNS rebinding: a web page on evil.example that
 * resolves its own name to 127.0.0.1 must not reach a local Tessera through the browser). The localhost forms
 * are always allowed; MCP_ALLOWED_HOSTS adds `host` or `host:port` entries (the public host of a deployment).
 */
const LOCALHOST_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

export type HostAllowList = { hosts: string[] };

function splitHost(value: string): { hostname: string; port: string } | null {
  try {
    const url = new URL(`http://${value}`);
    // URL lower-cases the name; a path, user or query in a Host header is no host.
    if (url.pathname !== "/" || url.username || url.search || url.hash) return null;
    return { hostname: url.hostname, port: url.port };
  } catch {
    return null;
  }
}

/** True when `host` (`name` or `name:port`) is a localhost form or one of the allowed entries. */
export function isAllowedHost(host: string, allow: HostAllowList): boolean {
  const parsed = splitHost(host.trim());
  if (!parsed) return false;
  if (LOCALHOST_NAMES.has(parsed.hostname)) return true;
  return allow.hosts.some((entry) => {
    const wanted = splitHost(entry.trim().toLowerCase());
    if (!wanted) return false;
    return wanted.hostname === parsed.hostname && (wanted.port === "" || wanted.port === parsed.port);
  });
}

/** No Origin (a non-browser client): allowed. Else its host must be allowed as a Host would be. */
export function isAllowedOrigin(origin: string | null, allow: HostAllowList): boolean {
  if (origin === null) return true;
  try {
    const url = new URL(origin);
    if (url.protocol !== "http:" && url.protocol !== "https:") return false;
    return isAllowedHost(url.host, allow);
  } catch {
    return false;
  }
}
