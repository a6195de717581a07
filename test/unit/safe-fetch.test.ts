import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

// Lets a test play DNS: a name in `fakeDns` gets its next answer (a list of addresses) per lookup; other names
// go to the real resolver. Only the guard's own lookups come here: a socket that resolved a name by itself would
// use node:dns, where these names do not exist.
const fakeDns = new Map<string, string[][]>();
const lookups: string[] = [];
vi.mock("node:dns/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:dns/promises")>();
  const lookup = async (hostname: string, options: object) => {
    lookups.push(hostname);
    const answers = fakeDns.get(hostname);
    if (!answers) return real.lookup(hostname, options as any);
    const addresses = answers.shift() ?? ["10.255.255.1"];
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return { ...real, default: { ...real, lookup }, lookup };
});

const { isPublicAddress, safeFetch } = await import("../../services/assets/safe-fetch.ts");

let server: Server;
let other: Server;
let base: string;
let otherBase: string;
const seenHeaders: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    seenHeaders.push(request.headers);
    const url = new URL(request.url!, base);
    if (url.pathname === "/hello") return response.end("hello");
    if (url.pathname === "/echo-method") return response.end(request.method);
    if (url.pathname === "/redirect") return response.writeHead(302, { location: url.searchParams.get("to")! }).end();
    if (url.pathname === "/see-other") return response.writeHead(303, { location: "/echo-method" }).end();
    if (url.pathname === "/loop") return response.writeHead(302, { location: "/loop" }).end();
    if (url.pathname === "/declared-big") return response.writeHead(200, { "content-length": "999999" }).end("x");
    if (url.pathname === "/chunked-big") {
      response.writeHead(200);
      for (let i = 0; i < 20; i++) response.write(Buffer.alloc(1000, 1));
      return response.end();
    }
    if (url.pathname === "/silent") return; // never answers
    response.writeHead(404).end();
  });
  other = createServer((request, response) => {
    seenHeaders.push(request.headers);
    response.end("other");
  });
  await Promise.all([server, other].map((s) => new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve))));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  otherBase = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
});
afterAll(() => {
  for (const s of [server, other]) {
    s.closeAllConnections();
    s.close();
  }
});

const policy = (overrides: Partial<Parameters<typeof safeFetch>[2]> = {}) => ({
  allowHosts: [new URL(base).host, new URL(otherBase).host],
  timeoutMs: 2000,
  maxBytes: 10_000,
  maxRedirects: 3,
  ...overrides,
});

const codeOf = (promise: Promise<unknown>) => promise.then(() => "fetched", (error) => error.code ?? String(error));

describe("isPublicAddress", () => {
  it.each(["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"])("lets %s through", (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  it.each([
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
    "64:ff9b::7f00:1", "2002:7f00:1::", "2001:db8::1",
  ])("refuses %s", (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });
});

// The IANA IPv6 special-purpose address registry, one row per block: a sample address at its start and one inside.
// Blocks the registry marks not globally reachable (and the deprecated ::/96, fec0::/10, and multicast) are refused.
const ipv6SpecialPurpose: Array<[block: string, addresses: string[]]> = [
  ["::/128 unspecified", ["::"]],
  ["::1/128 loopback", ["::1"]],
  ["::/96 IPv4-compatible (deprecated)", ["::7f00:1", "::a00:1", "::808:808", "::2"]],
  ["::ffff:0:0/96 IPv4-mapped", ["::ffff:7f00:1", "::ffff:808:808"]],
  ["64:ff9b::/96 IPv4-IPv6 translation", ["64:ff9b::7f00:1", "64:ff9b::808:808"]],
  ["64:ff9b:1::/48 local-use translation", ["64:ff9b:1::", "64:ff9b:1:ffff::a00:1"]],
  ["100::/64 discard-only", ["100::", "100::ffff:1"]],
  ["100:0:0:1::/64 dummy prefix", ["100:0:0:1::", "100:0:0:1::7"]],
  ["2001::/23 IETF protocol assignments", ["2001:5::1", "2001:1ff::1", "2001:100::1"]],
  ["2001::/32 Teredo", ["2001::", "2001:0:4136:e378::1"]],
  ["2001:2::/48 benchmarking", ["2001:2::", "2001:2:0:ff::1"]],
  ["2001:10::/28 ORCHID (deprecated)", ["2001:10::", "2001:1f::1"]],
  ["2001:db8::/32 documentation", ["2001:db8::", "2001:db8:ffff::1"]],
  ["2002::/16 6to4 of a private IPv4", ["2002:7f00:1::", "2002:a00:1::1", "2002:a9fe:a9fe::"]],
  ["3fff::/20 documentation", ["3fff::", "3fff:fff::1"]],
  ["5f00::/16 segment routing SIDs", ["5f00::", "5f00:ffff::1"]],
  ["fc00::/7 unique local", ["fc00::", "fdff:ffff::1"]],
  ["fe80::/10 link-local", ["fe80::", "febf::1"]],
  ["fec0::/10 site-local (deprecated)", ["fec0::1"]],
  ["ff00::/8 multicast", ["ff00::", "ff02::1", "ff0e::101"]],
  ["outside 2000::/3 (unallocated)", ["4000::1", "8000::1", "1::1"]],
];

// Sub-blocks of 2001::/23 that the registry marks globally reachable, and 6to4 of a public IPv4.
const ipv6GloballyReachable: Array<[block: string, address: string]> = [
  ["2001:1::1/128 port control protocol anycast", "2001:1::1"],
  ["2001:1::2/128 TURN anycast", "2001:1::2"],
  ["2001:1::3/128 DNS-SD service registration anycast", "2001:1::3"],
  ["2001:3::/32 AMT", "2001:3::1"],
  ["2001:4:112::/48 AS112-v6", "2001:4:112::1"],
  ["2001:20::/28 ORCHIDv2", "2001:20::1"],
  ["2001:30::/28 drone remote ID", "2001:30::1"],
  ["2620:4f:8000::/48 AS112 direct delegation", "2620:4f:8000::1"],
  ["2002::/16 6to4 of a public IPv4", "2002:808:808::1"],
];

describe("isPublicAddress against the IANA IPv6 special-purpose registry", () => {
  it.each(ipv6SpecialPurpose)("refuses %s", (_block, addresses) => {
    for (const address of addresses) expect([address, isPublicAddress(address)]).toEqual([address, false]);
  });

  it.each(ipv6GloballyReachable)("lets %s through", (_block, address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  it("refuses the neighbours of the reachable anycast addresses", () => {
    expect(isPublicAddress("2001:1::4")).toBe(false);
    expect(isPublicAddress("2001:1::")).toBe(false);
  });
});

describe("safeFetch", () => {
  it("fetches an allow-listed host", async () => {
    const response = await safeFetch(`${base}/hello`, {}, policy());
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("hello");
  });

  it("refuses loopback when the allow-list does not name it, by address or by name", async () => {
    expect(await codeOf(safeFetch(`${base}/hello`, {}, policy({ allowHosts: [] })))).toBe("URL_NOT_ALLOWED");
    const port = new URL(base).port;
    expect(await codeOf(safeFetch(`http://localhost:${port}/hello`, {}, policy({ allowHosts: [] })))).toBe("URL_NOT_ALLOWED");
    // An entry with a port allows that port only.
    expect(await codeOf(safeFetch(`${base}/hello`, {}, policy({ allowHosts: ["127.0.0.1:1"] })))).toBe("URL_NOT_ALLOWED");
    expect(await codeOf(safeFetch(`${base}/hello`, {}, policy({ allowHosts: ["127.0.0.1"] })))).toBe("fetched");
  });

  it("refuses schemes other than http and https", async () => {
    for (const url of ["file:///etc/passwd", "ftp://example.com/", "gopher://127.0.0.1/", "data:text/plain,hi"]) {
      expect(await codeOf(safeFetch(url, {}, policy()))).toBe("URL_NOT_ALLOWED");
    }
    expect(await codeOf(safeFetch("not a url", {}, policy()))).toBe("BAD_USER_INPUT");
  });

  it("checks every redirect again", async () => {
    const to = (target: string) => `${base}/redirect?to=${encodeURIComponent(target)}`;
    expect(await (await safeFetch(to(`${otherBase}/`), {}, policy())).text()).toBe("other");
    expect(await codeOf(safeFetch(to("http://169.254.169.254/"), {}, policy()))).toBe("URL_NOT_ALLOWED");
    expect(await codeOf(safeFetch(to(`${otherBase}/`), {}, policy({ allowHosts: [new URL(base).host] })))).toBe("URL_NOT_ALLOWED");
    expect(await codeOf(safeFetch(to("file:///etc/passwd"), {}, policy()))).toBe("URL_NOT_ALLOWED");
  });

  it("stops after the maximum number of redirects", async () => {
    expect(await codeOf(safeFetch(`${base}/loop`, {}, policy()))).toBe("FETCH_FAILED");
  });

  it("turns POST into GET on 303 and keeps credentials away from other origins", async () => {
    expect(await (await safeFetch(`${base}/see-other`, { method: "POST", body: "x" }, policy())).text()).toBe("GET");
    seenHeaders.length = 0;
    const to = `${base}/redirect?to=${encodeURIComponent(`${otherBase}/`)}`;
    await (await safeFetch(to, { headers: { authorization: "Bearer secret", "x-trace": "1" } }, policy())).text();
    expect(seenHeaders[0]!.authorization).toBe("Bearer secret");
    expect(seenHeaders[1]!.authorization).toBeUndefined();
    expect(seenHeaders[1]!["x-trace"]).toBe("1");
  });

  it("refuses a body over the size limit, declared or streamed", async () => {
    expect(await codeOf(safeFetch(`${base}/declared-big`, {}, policy()))).toBe("PAYLOAD_TOO_LARGE");
    const streamed = await safeFetch(`${base}/chunked-big`, {}, policy());
    expect(await codeOf(streamed.text())).toBe("PAYLOAD_TOO_LARGE");
  });

  it("gives up after the time limit", async () => {
    const started = Date.now();
    expect(await codeOf(safeFetch(`${base}/silent`, {}, policy({ timeoutMs: 300 })))).toBe("TIMEOUT");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("reports a name that does not resolve as URL_NOT_ALLOWED, as it does an internal one (issue #14: FETCH_FAILED told them apart)", async () => {
    expect(await codeOf(safeFetch("http://no-such-host.invalid/", {}, policy()))).toBe("URL_NOT_ALLOWED");
  });

  it("refuses a name if any of its addresses is private", async () => {
    fakeDns.set("mixed.example", [["93.184.216.34", "127.0.0.1"]]);
    expect(await codeOf(safeFetch("http://mixed.example/", {}, policy()))).toBe("URL_NOT_ALLOWED");
  });

  it("connects to the address it checked: a second DNS answer cannot rebind the name", async () => {
    // First answer: the allow-listed test server; any later lookup would point somewhere else.
    const port = new URL(base).port;
    fakeDns.set("rebind.example", [["127.0.0.1"], ["10.255.255.1"]]);
    lookups.length = 0;
    const response = await safeFetch(`http://rebind.example:${port}/hello`, {}, policy({ allowHosts: [`rebind.example:${port}`] }));
    expect(await response.text()).toBe("hello");
    expect(lookups.filter((name) => name === "rebind.example")).toHaveLength(1);
  });

  it("refuses a name that resolves to a private address", async () => {
    fakeDns.set("internal.example", [["10.0.0.5"]]);
    expect(await codeOf(safeFetch("http://internal.example/", {}, policy()))).toBe("URL_NOT_ALLOWED");
  });
  it("refuses a name that does not resolve, one that resolves privately, and a private address alike, naming no address", async () => {
    fakeDns.set("secret-db.example", [["10.20.30.40"]]);
    fakeDns.set("metadata.example", [["fd00::a9fe:a9fe"]]);
    const refusal = (url: string) =>
      safeFetch(url, {}, policy({ allowHosts: [] })).then(
        () => ({ code: "fetched", message: "", details: undefined }),
        (error) => ({ code: error.code as string, message: error.message as string, details: error.details as Record<string, unknown> | undefined }),
      );
    const unresolvable = await refusal("http://no-such-host.invalid/");
    const internal = await refusal("http://secret-db.example/");
    const internal6 = await refusal("http://metadata.example/");
    for (const answer of [unresolvable, internal, internal6]) {
      expect(answer.code).toBe("URL_NOT_ALLOWED");
      expect(JSON.stringify(answer)).not.toMatch(/10\.20\.30\.40|fd00|a9fe|ENOTFOUND|EAI_/i);
    }
    // The same words, but for the host the caller named itself.
    expect(internal.message.replace("secret-db.example", "HOST")).toBe(unresolvable.message.replace("no-such-host.invalid", "HOST"));
    expect(internal6.message.replace("metadata.example", "HOST")).toBe(unresolvable.message.replace("no-such-host.invalid", "HOST"));
    expect(Object.keys(internal.details ?? {})).toEqual(Object.keys(unresolvable.details ?? {}));
  });

  it("says why a public address could not be fetched without the socket's words", async () => {
    // An allow-listed port with nothing listening: the reason is a code, not the socket's message with its address.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await safeFetch(`http://127.0.0.1:${port}/`, {}, policy({ allowHosts: [`127.0.0.1:${port}`] })).catch((error) => error);
    expect(error.code).toBe("FETCH_FAILED");
    expect(JSON.stringify({ message: error.message, details: error.details })).not.toMatch(/connect ECONNREFUSED/);
  });
});
