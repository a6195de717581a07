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

  it("reports a name that does not resolve as FETCH_FAILED", async () => {
    expect(await codeOf(safeFetch("http://no-such-host.invalid/", {}, policy()))).toBe("FETCH_FAILED");
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
});
