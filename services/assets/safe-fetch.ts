import { lookup as dnsLookup } from "node:dns/promises";
import type { LookupFunction } from "node:net";
import { Readable, Transform } from "node:stream";
import ipaddr from "ipaddr.js";
import { Agent, fetch, type Response } from "undici";
import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";

/** Limits of one guarded fetch; `fetchPolicy(config)` gives the configured ones. */
export type SafeFetchPolicy = {
  /** `host` or `host:port` entries that may resolve to private addresses. */
  allowHosts: string[];
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
};

export type SafeFetchInit = {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
};

export type SafeResponse = {
  /** Where the content finally came from, after redirects. */
  url: string;
  status: number;
  ok: boolean;
  headers: Headers;
  /** The body, stopped with PAYLOAD_TOO_LARGE past `maxBytes` and with TIMEOUT past `timeoutMs`. */
  body: Readable;
  text(): Promise<string>;
  json(): Promise<unknown>;
};

export function fetchPolicy(config: Config): SafeFetchPolicy {
  return {
    allowHosts: config.URL_ALLOW_HOSTS,
    timeoutMs: config.URL_FETCH_TIMEOUT_MS,
    maxBytes: config.MAX_UPLOAD_BYTES,
    maxRedirects: config.URL_MAX_REDIRECTS,
  };
}

type PinnedAddress = { address: string; family: 4 | 6 };

/**
 * Fetches a URL on behalf of a user without letting them reach what only the
 * server can reach (SSRF): http(s) only; every address the name resolves to
 * must be public unless the host is allow-listed; the connection goes to the
 * address that was checked (a second DNS answer cannot swap it: rebinding);
 * redirects are followed by hand and each hop is checked again; the whole
 * exchange has a time limit and the body a size limit.
 */
export async function safeFetch(url: string, init: SafeFetchInit = {}, policy: SafeFetchPolicy): Promise<SafeResponse> {
  const deadline = AbortSignal.timeout(policy.timeoutMs);
  const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
  // Each hop's host resolves to the address checked for it, and to nothing else.
  const pinned = new Map<string, PinnedAddress>();
  const lookup: LookupFunction = (hostname, options, callback) => {
    const address = pinned.get(hostname.toLowerCase());
    if (!address) return callback(new TesseraError(ErrorCode.URL_NOT_ALLOWED, `${hostname} was not checked`) as unknown as NodeJS.ErrnoException, "", 4);
    if (options.all) return (callback as any)(null, [address]);
    callback(null, address.address, address.family);
  };
  const agent = new Agent({ connect: { lookup, timeout: policy.timeoutMs } });

  let current = parseTarget(url);
  let method = (init.method ?? "GET").toUpperCase();
  let body = init.body;
  let headers = { ...init.headers };
  try {
    for (let hop = 0; ; hop++) {
      const address = await checkTarget(current, policy.allowHosts);
      if (address) pinned.set(current.hostname.toLowerCase(), address);
      const response = await fetch(current, { method, headers, body, redirect: "manual", signal, dispatcher: agent }).catch((error) => {
        throw fetchError(error, current, deadline, policy.timeoutMs);
      });
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location) {
        await response.body?.cancel().catch(() => {});
        if (hop >= policy.maxRedirects) {
          throw new TesseraError(ErrorCode.FETCH_FAILED, `more than ${policy.maxRedirects} redirects`, { url: current.href });
        }
        const next = parseTarget(new URL(location, current).href);
        // Credentials are for the origin they were sent to, not for wherever it redirects.
        if (next.origin !== current.origin) headers = withoutCredentials(headers);
        if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        current = next;
        continue;
      }
      return limitedResponse(response, current.href, policy, deadline, () => agent.destroy().catch(() => {}));
    }
  } catch (error) {
    await agent.destroy().catch(() => {});
    throw error;
  }
}

function parseTarget(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "not a valid URL", { url });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TesseraError(ErrorCode.URL_NOT_ALLOWED, `only http and https URLs can be fetched, not ${parsed.protocol}`, { url });
  }
  return parsed;
}

/** Resolves the host and checks every address; returns the one to connect to (none for an allow-listed name). */
async function checkTarget(url: URL, allowHosts: string[]): Promise<PinnedAddress | undefined> {
  const hostname = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const allowListed = allowHosts.includes(hostname) || allowHosts.includes(`${hostname}:${port}`);
  if (ipaddr.isValid(hostname)) {
    if (!allowListed && !isPublicAddress(hostname)) throw notPublic(url);
    return undefined; // an IP literal is connected to as is: there is no name to rebind
  }
  let addresses: Array<{ address: string; family: number }>;
  try {
    addresses = await dnsLookup(hostname, { all: true, verbatim: true });
  } catch {
    addresses = [];
  }
  // A name that does not resolve reads like one that resolves inside: a caller cannot tell internal names apart.
  if (addresses.length === 0) throw notPublic(url);
  if (!allowListed && addresses.some(({ address }) => !isPublicAddress(address))) throw notPublic(url);
  return { address: addresses[0]!.address, family: addresses[0]!.family === 6 ? 6 : 4 };
}

/** Only globally reachable unicast addresses pass (see `isPublicIPv6` for IPv6). */
export function isPublicAddress(address: string): boolean {
  const ip = ipaddr.parse(address);
  return ip.kind() === "ipv4" ? isPublicIPv4(ip as ipaddr.IPv4) : isPublicIPv6(ip as ipaddr.IPv6);
}

/** Private, loopback, link-local, CGNAT, multicast, documentation and reserved ranges do not pass. */
function isPublicIPv4(ip: ipaddr.IPv4): boolean {
  return ip.range() === "unicast";
}

/**
 * IPv6 blocks that are never fetched: every block of the IANA IPv6 special-purpose address
 * registry that it does not mark globally reachable, plus the deprecated IPv4-compatible
 * ::/96 and site-local fec0::/10, and multicast. 64:ff9b::/96 (NAT64) is refused too although
 * the registry marks it reachable: the gateway's translator could reach a private IPv4.
 */
const REFUSED_IPV6 = [
  "::/128", // unspecified
  "::1/128", // loopback
  "::/96", // IPv4-compatible, deprecated (::7f00:1 is 127.0.0.1 to some stacks)
  "::ffff:0:0/96", // IPv4-mapped
  "64:ff9b::/96", // IPv4-IPv6 translation
  "64:ff9b:1::/48", // local-use IPv4-IPv6 translation
  "100::/64", // discard-only
  "100:0:0:1::/64", // dummy prefix
  "2001::/23", // IETF protocol assignments (less the reachable blocks below)
  "2001:db8::/32", // documentation
  "3fff::/20", // documentation
  "5f00::/16", // segment routing SIDs
  "fc00::/7", // unique local
  "fe80::/10", // link-local
  "fec0::/10", // site-local, deprecated
  "ff00::/8", // multicast
].map((cidr) => ipaddr.IPv6.parseCIDR(cidr));

/** Blocks inside 2001::/23 that the registry marks globally reachable. */
const REACHABLE_IN_IETF_BLOCK = [
  "2001:1::1/128", // port control protocol anycast
  "2001:1::2/128", // TURN anycast
  "2001:1::3/128", // DNS-SD service registration protocol anycast
  "2001:3::/32", // AMT
  "2001:4:112::/48", // AS112-v6
  "2001:20::/28", // ORCHIDv2
  "2001:30::/28", // drone remote ID protocol entity tags
].map((cidr) => ipaddr.IPv6.parseCIDR(cidr));

const GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR("2000::/3");
const SIX_TO_FOUR = ipaddr.IPv6.parseCIDR("2002::/16");

/** Global unicast (2000::/3, the only block allocated for it) outside the refused blocks; 6to4 is judged by the IPv4 inside. */
function isPublicIPv6(ip: ipaddr.IPv6): boolean {
  if (ip.match(SIX_TO_FOUR)) {
    const [, high, low] = ip.parts;
    return isPublicIPv4(new ipaddr.IPv4([high! >> 8, high! & 0xff, low! >> 8, low! & 0xff]));
  }
  if (REACHABLE_IN_IETF_BLOCK.some((block) => ip.match(block))) return true;
  if (REFUSED_IPV6.some((block) => ip.match(block))) return false;
  return ip.match(GLOBAL_UNICAST);
}

/** One refusal for every host that is not fetched: it names the host as the caller wrote it, never what it resolved to. */
function notPublic(url: URL) {
  return new TesseraError(ErrorCode.URL_NOT_ALLOWED, `${url.hostname} does not resolve to a public internet address`, { url: url.href });
}

function withoutCredentials(headers: Record<string, string>) {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(authorization|cookie|proxy-authorization)$/i.test(name)));
}

function fetchError(error: unknown, url: URL, deadline: AbortSignal, timeoutMs: number): unknown {
  const cause = (error as { cause?: unknown })?.cause;
  if (cause instanceof TesseraError) return cause;
  if (error instanceof TesseraError) return error;
  if (deadline.aborted) return new TesseraError(ErrorCode.TIMEOUT, `fetching ${url.href} took longer than ${timeoutMs} ms`);
  // The socket's own words name the address it tried (an allow-listed host's internal one): only its code is told.
  const reason = errnoCodeOf(cause) ?? errnoCodeOf(error) ?? "network error";
  return new TesseraError(ErrorCode.FETCH_FAILED, `cannot fetch ${url.href}`, { url: url.href, reason });
}

function errnoCodeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : undefined;
}

function limitedResponse(response: Response, url: string, policy: SafeFetchPolicy, deadline: AbortSignal, release: () => void): SafeResponse {
  const declared = Number(response.headers.get("content-length"));
  if (declared > policy.maxBytes) {
    response.body?.cancel().catch(() => {});
    release();
    throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `${url} is ${declared} bytes, more than the limit of ${policy.maxBytes}`);
  }
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      if (received > policy.maxBytes) {
        callback(new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `${url} is larger than the limit of ${policy.maxBytes} bytes`));
        return;
      }
      callback(null, chunk);
    },
  });
  const source = response.body ? Readable.fromWeb(response.body as any) : Readable.from([]);
  source.on("error", (error) => {
    meter.destroy(
      deadline.aborted ? new TesseraError(ErrorCode.TIMEOUT, `fetching ${url} took longer than ${policy.timeoutMs} ms`) : fetchError(error, new URL(url), deadline, policy.timeoutMs) as Error,
    );
  });
  meter.on("close", () => {
    source.destroy();
    release();
  });
  const body = source.pipe(meter);
  const text = async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  };
  return {
    url,
    status: response.status,
    ok: response.ok,
    headers: response.headers as unknown as Headers,
    body,
    text,
    json: async () => JSON.parse(await text()),
  };
}
