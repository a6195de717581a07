import { request as httpRequest } from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../services/core/api-keys.ts";
import { createGateway, type Gateway } from "../../services/gateway/gateway.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

/*
 * Tessera as an MCP server at /mcp, driven by the official SDK's client over Streamable HTTP against the real
 * gateway, worker, PostgreSQL, Redis and Weaviate: tools, resources, keys, Host/Origin checks, two gateways.
 */

type Replies = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** A raw POST (fetch may not set Host). */
function rawPost(url: string, headers: Record<string, string>, body: string): Promise<Replies> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});

describe("MCP server at /mcp", () => {
  let t: TestApp;
  let second: Gateway;
  let mcpUrl: string;
  let secondUrl: string;
  let project: { key: string; projectId: string };
  const clients: Client[] = [];

  async function connect(key: string, fetchImpl?: typeof fetch): Promise<Client> {
    const client = new Client({ name: "tessera-test", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
      ...(fetchImpl ? { fetch: fetchImpl } : {}),
    });
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    t = await startTestApp({ worker: true, env: { WEAVIATE_URL: TEST_WEAVIATE_URL, WEAVIATE_GRPC_PORT: String(TEST_WEAVIATE_GRPC_PORT) } });
    mcpUrl = t.url.replace(/\/graphql$/, "/mcp");
    // A second gateway (another HTTP server with its own plugins and key cache) over the same services.
    second = createGateway(t.app);
    const address = await second.listen(0, "127.0.0.1");
    secondUrl = `http://127.0.0.1:${address.port}/mcp`;
    project = await t.createProject();
  });

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => {});
    await second?.close();
    await t.app.vectorStore.deleteProject(project.projectId).catch(() => {});
    await t.close();
  });

  it("lists its tools with input and output schemas, and says it logs", async () => {
    const client = await connect(project.key);
    expect(client.getServerVersion()?.name).toBe("tessera");
    expect(client.getServerCapabilities()?.logging).toBeDefined();
    const { tools } = await client.listTools();
    const byName = new Map(tools.map((tool) => [tool.name, tool]));
    for (const name of ["search", "ingest", "get_asset"]) {
      const tool = byName.get(name);
      expect(tool, name).toBeDefined();
      expect(tool!.description).toBeTruthy();
      expect(tool!.inputSchema.type).toBe("object");
      expect(tool!.outputSchema?.type).toBe("object");
    }
    expect(Object.keys(byName.get("search")!.inputSchema.properties ?? {})).toEqual(expect.arrayContaining(["text", "assetId", "modalities", "limit"]));
    await client.ping();
    await client.setLoggingLevel("warning");
  });

  it("ingests through `ingest`, then `search` finds the asset, `get_asset` shows it and resources read it", async () => {
    const client = await connect(project.key);
    const text = "The lighthouse keeper polished the great brass lens every evening before the storm.";
    const ingested = await client.callTool({ name: "ingest", arguments: { text, tags: ["mcp"], metadata: { title: "Lighthouse" } } });
    expect(ingested.isError).toBeFalsy();
    const { assetId, jobId } = ingested.structuredContent as { assetId: string; jobId: string };
    expect(assetId).toBeTruthy();
    const job = await eventually(async () => {
      const row = await t.app.db.job.findUnique({ where: { id: jobId } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 90_000);
    expect(job.status).toBe("SUCCEEDED");

    const found = await client.callTool({ name: "search", arguments: { text: "lighthouse lens polished before a storm", limit: 5 } });
    expect(found.isError).toBeFalsy();
    const hits = (found.structuredContent as { hits: Array<{ assetId: string; modality: string; score: number; title?: string }> }).hits;
    const hit = hits.find((candidate) => candidate.assetId === assetId);
    expect(hit).toMatchObject({ modality: "TEXT", title: "Lighthouse" });
    expect(JSON.parse((found.content as Array<{ type: string; text: string }>)[0]!.text).hits).toEqual(hits);

    const asset = await client.callTool({ name: "get_asset", arguments: { id: assetId } });
    expect(asset.structuredContent).toMatchObject({ id: assetId, status: "READY", modality: "TEXT", tags: ["mcp"], text });

    const uri = `tessera://assets/${assetId}`;
    const { resources } = await client.listResources();
    expect(resources.map((resource) => resource.uri)).toContain(uri);
    const read = await client.readResource({ uri });
    expect(read.contents[0]).toMatchObject({ uri, text });
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((template) => template.uriTemplate)).toContain("tessera://assets/{id}");
  });

  it("holds a key to its scopes: a read-only key searches but is not offered ingest; a key without read is refused", async () => {
    const projectRow = await t.app.db.project.findUniqueOrThrow({ where: { id: project.projectId } });
    const reader = await createApiKey(t.app.db, projectRow.name, "mcp-reader", { scopes: ["read"] });
    const client = await connect(reader.key);
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    expect(names).toEqual(expect.arrayContaining(["search", "get_asset"]));
    expect(names).not.toContain("ingest");
    const before = await t.app.db.asset.count({ where: { projectId: project.projectId } });
    const refused = await client.callTool({ name: "ingest", arguments: { text: "a read-only key must not store this" } }).catch((error: Error) => ({ isError: true, error }));
    expect(refused.isError).toBe(true);
    expect(await t.app.db.asset.count({ where: { projectId: project.projectId } })).toBe(before);
    expect((await client.callTool({ name: "search", arguments: { text: "lighthouse" } })).isError).toBeFalsy();

    const writer = await createApiKey(t.app.db, projectRow.name, "mcp-writer", { scopes: ["write"] });
    const response = await fetch(mcpUrl, {
      method: "POST",
      headers: { authorization: `Bearer ${writer.key}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
    });
    expect(response.status).toBe(403);
  });

  it("keeps each key to its project: another project's key neither finds nor reads the asset", async () => {
    const client = await connect(project.key);
    const ingested = await client.callTool({ name: "ingest", arguments: { text: "Only the first project may read this note." } });
    const { assetId } = ingested.structuredContent as { assetId: string };
    const other = await t.createProject();
    const outsider = await connect(other.key);
    const asset = await outsider.callTool({ name: "get_asset", arguments: { id: assetId } });
    expect(asset.isError).toBe(true);
    expect((asset.content as Array<{ text: string }>)[0]!.text).toMatch(/^NOT_FOUND/);
    await expect(outsider.readResource({ uri: `tessera://assets/${assetId}` })).rejects.toThrow(/not found/i);
    expect((await outsider.listResources()).resources).toEqual([]);
  });

  it("get_asset gives an image the text it was indexed by (OCR), and media without those spans", async () => {
    const other = await t.createProject();
    const asset = await t.app.db.asset.create({
      data: {
        projectId: other.projectId,
        modality: "IMAGE",
        sha256: "e".repeat(64),
        mimeType: "image/png",
        byteSize: 10,
        source: "upload",
        status: "READY",
        media: { width: 8, height: 8, indexedText: [{ kind: "OCR", text: "EMERGENCY EXIT", start: 0, end: 0 }, { kind: "OCR", text: "KEEP CLEAR", start: 0, end: 0 }] },
      },
    });
    const client = await connect(other.key);
    const result = await client.callTool({ name: "get_asset", arguments: { id: asset.id } });
    expect(result.structuredContent).toMatchObject({ id: asset.id, modality: "IMAGE", text: "EMERGENCY EXIT\nKEEP CLEAR", media: { width: 8, height: 8 } });
    expect((result.structuredContent as { media: Record<string, unknown> }).media).not.toHaveProperty("indexedText");
  });

  it("pages resources/list over the project's assets", async () => {
    const other = await t.createProject();
    // Rows only (resources/list reads no bytes): 55 assets, one page of 50 and one of 5.
    await t.app.db.asset.createMany({
      data: Array.from({ length: 55 }, (_, index) => ({
        projectId: other.projectId,
        modality: "TEXT" as const,
        sha256: index.toString(16).padStart(64, "0"),
        mimeType: "text/plain",
        byteSize: 1,
        source: "text",
      })),
    });
    const client = await connect(other.key);
    const first = await client.listResources();
    expect(first.resources).toHaveLength(50);
    expect(first.nextCursor).toBeTruthy();
    const rest = await client.listResources({ cursor: first.nextCursor });
    expect(rest.resources).toHaveLength(5);
    expect(rest.nextCursor).toBeUndefined();
    expect(new Set([...first.resources, ...rest.resources].map((resource) => resource.uri)).size).toBe(55);
  });

  it("answers 401 with WWW-Authenticate without a key, and with an unknown one", async () => {
    const none = await rawPost(mcpUrl, {}, INITIALIZE);
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer /);
    const bad = await rawPost(mcpUrl, { authorization: "Bearer tsk_not-a-key" }, INITIALIZE);
    expect(bad.status).toBe(401);
    expect(bad.headers["www-authenticate"]).toMatch(/invalid_token/);
    const good = await rawPost(mcpUrl, { authorization: `Bearer ${project.key}` }, INITIALIZE);
    expect(good.status).toBe(200);
  });

  it("refuses a foreign Host or Origin (DNS rebinding), before anything else", async () => {
    const auth = { authorization: `Bearer ${project.key}` };
    const evilHost = await rawPost(mcpUrl, { ...auth, host: "evil.example" }, INITIALIZE);
    expect(evilHost.status).toBe(403);
    const evilOrigin = await rawPost(mcpUrl, { ...auth, origin: "http://evil.example" }, INITIALIZE);
    expect(evilOrigin.status).toBe(403);
    const localOrigin = await rawPost(mcpUrl, { ...auth, host: "localhost:4000", origin: "http://localhost:5173" }, INITIALIZE);
    expect(localOrigin.status).toBe(200);
    // An allowed public host comes from MCP_ALLOWED_HOSTS (tested in unit tests of the guard).
  });

  it("serves one client from two gateways, its requests alternating between them (no session in a process)", async () => {
    const urls = [mcpUrl, secondUrl];
    const seen: string[] = [];
    let turn = 0;
    const alternating: typeof fetch = (input, init) => {
      const target = urls[turn++ % 2]!;
      seen.push(target);
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      return fetch(target + url.search, init);
    };
    const client = await connect(project.key, alternating);
    const { tools } = await client.listTools();
    expect(tools.length).toBeGreaterThanOrEqual(3);
    const found = await client.callTool({ name: "search", arguments: { text: "lighthouse" } });
    expect(found.isError).toBeFalsy();
    await client.ping();
    expect(new Set(seen)).toEqual(new Set(urls));
  });
});

describe("MCP server rate limits", () => {
  let limited: TestApp;

  beforeAll(async () => {
    limited = await startTestApp({ env: { RATE_LIMIT_PROJECT_PER_SECOND: "1", RATE_LIMIT_PROJECT_BURST: "0" } });
  });

  afterAll(async () => {
    await limited?.close();
  });

  it("counts /mcp requests against the project's rate, as GraphQL's: 429 with Retry-After past it", async () => {
    const { key } = await limited.createProject();
    const url = limited.url.replace(/\/graphql$/, "/mcp");
    // Ten at once against one request a second (no burst): most are refused.
    const replies = await Promise.all(Array.from({ length: 10 }, () => rawPost(url, { authorization: `Bearer ${key}` }, INITIALIZE)));
    const refused = replies.filter((reply) => reply.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.headers["retry-after"]).toMatch(/^\d+$/);
    expect(JSON.parse(refused[0]!.body).error.message).toMatch(/RATE_LIMIT_PROJECT_PER_SECOND/);
    // Another project has its own count.
    const other = await limited.createProject();
    expect((await rawPost(url, { authorization: `Bearer ${other.key}` }, INITIALIZE)).status).toBe(200);
  });
});
