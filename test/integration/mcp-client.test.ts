import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import { z } from "zod";
import type { FakeOpenAIServer } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { freePort } from "../support/own-redis.ts";
import type { TestApp } from "../support/test-app.ts";
import { workflowClient } from "../support/workflow-client.ts";

/*
 * MCP tools in workflows: a local MCP server (the official SDK's, Streamable HTTP) with tools, registered in a
 * project over GraphQL with a key header; an `mcp.call` step and an `agent` (on a local OpenAI-protocol server)
 * call it through the real worker. Private addresses not allowed are refused with URL_NOT_ALLOWED.
 */

const SERVER_KEY = "s3cret-mcp-key-value";

type LocalMcp = { url: string; port: number; calls: Array<{ tool: string; args: unknown; key: string | undefined }>; close(): Promise<void> };

/** An MCP server with `add` and `fail`, that answers only requests carrying `x-api-key: SERVER_KEY`. */
async function startLocalMcpServer(): Promise<LocalMcp> {
  const calls: LocalMcp["calls"] = [];
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#f80" } }).png().toBuffer();
  const http: Server = createServer(async (req, res) => {
    const key = req.headers["x-api-key"] as string | undefined;
    if (key !== SERVER_KEY) {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: "no key" }));
      return;
    }
    const server = new McpServer({ name: "calculator", version: "1.0.0" });
    server.registerTool(
      "add",
      { description: "Adds two numbers.", inputSchema: { a: z.number(), b: z.number() }, outputSchema: { sum: z.number() } },
      async ({ a, b }) => {
        calls.push({ tool: "add", args: { a, b }, key });
        return { content: [{ type: "text", text: String(a + b) }], structuredContent: { sum: a + b } };
      },
    );
    server.registerTool("picture", { description: "Draws an orange square.", inputSchema: {} }, async () => {
      calls.push({ tool: "picture", args: {}, key });
      return { content: [{ type: "text", text: "an orange square" }, { type: "image", data: png.toString("base64"), mimeType: "image/png" }] };
    });
    server.registerTool("fail", { description: "Always fails.", inputSchema: {} }, async () => {
      calls.push({ tool: "fail", args: {}, key });
      return { isError: true, content: [{ type: "text", text: "the calculator is broken" }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => void server.close());
    await server.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    calls,
    close: () => new Promise((resolve) => { http.closeAllConnections(); http.close(() => resolve()); }),
  };
}

let t: TestApp;
let mcp: LocalMcp;
let fake: FakeOpenAIServer;
let key: string;
let projectId: string;
let closedPort: number;
let harness: FakeProviderApp;
let workflows: ReturnType<typeof workflowClient>;

beforeAll(async () => {
  mcp = await startLocalMcpServer();
  closedPort = await freePort();
  harness = await startFakeProviderApp({
    models: { "llm.default": { provider: "fake", model: "agent-model", retries: 0 } },
    // The local MCP server's port (and a closed one) are allowed; any other private address is not.
    app: { worker: { concurrency: 2 }, env: { URL_ALLOW_HOSTS: `127.0.0.1:${mcp.port},127.0.0.1:${closedPort}`, MCP_CALL_TIMEOUT_MS: "10000" } },
  });
  ({ t, fake } = harness);
  ({ key, projectId } = await t.createProject());
  workflows = workflowClient(t, key);
  const registered = await t.graphql(
    `mutation ($h: JSON) { registerMcpServer(name: "calc", url: "${mcp.url}", headers: $h) { name url headerNames } }`,
    { h: { "X-Api-Key": SERVER_KEY } },
    key,
  );
  expect(registered.errors).toBeUndefined();
});

afterAll(async () => {
  await harness?.close();
  await mcp?.close();
});

afterEach(() => fake.reset());

const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

async function callOnce(withBlock: string) {
  const slug = unique("mcp-call");
  await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: call
    uses: mcp.call
    with: ${withBlock}
outputs:
  result: "\${{ steps.call.output }}"
`);
  return workflows.runToEnd(slug);
}

describe("registered MCP servers over GraphQL", () => {
  it("lists a server with its header names, never a value; the value is stored encrypted", async () => {
    const listed = await t.graphql(`{ mcpServers { name url headerNames } }`, {}, key);
    expect(listed.errors).toBeUndefined();
    expect(listed.data.mcpServers).toEqual([{ name: "calc", url: mcp.url, headerNames: ["x-api-key"] }]);
    expect(JSON.stringify(listed)).not.toContain(SERVER_KEY);
    const row = await t.app.db.mcpServer.findFirstOrThrow({ where: { projectId, name: "calc" } });
    expect(JSON.stringify(row)).not.toContain(SERVER_KEY);
    expect((row.headers as Record<string, string>)["x-api-key"]).toMatch(/^v1\./);
  });

  it("refuses bad names and headers, and another project neither sees nor removes the server", async () => {
    const badName = await t.graphql(`mutation { registerMcpServer(name: "no spaces", url: "https://example.com/mcp") { name } }`, {}, key);
    expect(badName.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const badHeader = await t.graphql(`mutation ($h: JSON) { registerMcpServer(name: "x", url: "https://example.com/mcp", headers: $h) { name } }`, { h: { "X-Key": "a\r\nb" } }, key);
    expect(badHeader.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const other = await t.createProject();
    expect((await t.graphql(`{ mcpServers { name } }`, {}, other.key)).data.mcpServers).toEqual([]);
    const removed = await t.graphql(`mutation { removeMcpServer(name: "calc") }`, {}, other.key);
    expect(removed.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(await t.app.db.mcpServer.count({ where: { projectId, name: "calc" } })).toBe(1);
  });
});

describe("mcp.call step", () => {
  it("calls a tool of a registered server with its key, and returns content and structuredContent", async () => {
    const run = await callOnce(`{ server: calc, tool: add, arguments: { a: 2, b: 3 } }`);
    expect(run.error).toBeNull();
    expect(run.output).toEqual({ result: { content: [{ type: "text", text: "5" }], structuredContent: { sum: 5 }, isError: false } });
    expect(mcp.calls.at(-1)).toEqual({ tool: "add", args: { a: 2, b: 3 }, key: SERVER_KEY });
  });

  it("fails with MCP_TOOL_ERROR when the tool answers isError, or returns it with failOnError: false", async () => {
    const failed = await callOnce(`{ server: calc, tool: fail }`);
    expect(failed.status).toBe("FAILED");
    expect(failed.error).toMatchObject({ code: "MCP_TOOL_ERROR" });
    expect((failed.error as { message: string }).message).toContain("the calculator is broken");
    const kept = await callOnce(`{ server: calc, tool: fail, failOnError: false }`);
    expect(kept.output).toMatchObject({ result: { isError: true, content: [{ type: "text", text: "the calculator is broken" }] } });
  });

  it("an unknown tool is MCP_TOOL_ERROR; an unknown server name NOT_FOUND", async () => {
    const unknownTool = await callOnce(`{ server: calc, tool: nope }`);
    expect(unknownTool.error).toMatchObject({ code: "MCP_TOOL_ERROR" });
    const unknownServer = await callOnce(`{ server: nobody, tool: add }`);
    expect(unknownServer.error).toMatchObject({ code: "NOT_FOUND" });
  });

  it("keeps returned images as assets with keepMedia; their parts then name the asset instead of carrying the bytes", async () => {
    const run = await callOnce(`{ server: calc, tool: picture, keepMedia: true }`);
    expect(run.error).toBeNull();
    const result = (run.output as { result: { content: any[]; assets: Array<{ assetId: string; mimeType: string }> } }).result;
    expect(result.assets).toHaveLength(1);
    expect(result.content).toEqual([{ type: "text", text: "an orange square" }, { type: "image", mimeType: "image/png", assetId: result.assets[0]!.assetId }]);
    const asset = await t.app.db.asset.findUniqueOrThrow({ where: { id: result.assets[0]!.assetId } });
    expect(asset).toMatchObject({ projectId, modality: "IMAGE", mimeType: "image/png", tags: ["mcp"] });
    // Without keepMedia the bytes stay in the output.
    const plain = await callOnce(`{ server: calc, tool: picture }`);
    expect((plain.output as { result: { content: any[] } }).result.content[1]).toMatchObject({ type: "image", data: expect.any(String) });
  });

  it("refuses a private URL that is not allowed with URL_NOT_ALLOWED, before connecting", async () => {
    const before = mcp.calls.length;
    const refused = await callOnce(`{ server: "http://127.0.0.1:1/mcp", tool: add, arguments: { a: 1, b: 1 } }`);
    expect(refused.status).toBe("FAILED");
    expect(refused.error).toMatchObject({ code: "URL_NOT_ALLOWED" });
    const metadata = await callOnce(`{ server: "http://169.254.169.254/mcp", tool: add }`);
    expect(metadata.error).toMatchObject({ code: "URL_NOT_ALLOWED" });
    expect(mcp.calls.length).toBe(before);
  });

  it("an allowed server that is down is MCP_UNREACHABLE; one refusing the key too", async () => {
    const down = await callOnce(`{ server: "http://127.0.0.1:${closedPort}/mcp", tool: add }`);
    expect(down.error).toMatchObject({ code: "MCP_UNREACHABLE" });
    // By URL, the registered key is not sent: the server answers 401.
    const noKey = await callOnce(`{ server: "${mcp.url}", tool: add, arguments: { a: 1, b: 2 } }`);
    expect(noKey.error).toMatchObject({ code: "MCP_UNREACHABLE" });
  });
});

describe("agent with mcp servers", () => {
  it("lists the server's tools for the model and calls one; the call is recorded as a child step", async () => {
    const slug = unique("mcp-agent");
    await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: answer
    uses: agent
    with:
      prompt: "What is 20 + 22?"
      mcp: [calc]
outputs:
  text: "\${{ steps.answer.output.text }}"
`);
    fake.enqueue(
      { kind: "chat", toolCalls: [{ name: "mcp_calc_add", arguments: { a: 20, b: 22 } }] },
      (request) => {
        const result = JSON.parse(request.body.messages.at(-1).content);
        return { kind: "chat", content: `It is ${result.output.structuredContent.sum}.` };
      },
    );
    const run = await workflows.runToEnd(slug);
    expect(run.error).toBeNull();
    expect(run.output).toEqual({ text: "It is 42." });
    const tools = fake.requests[0]!.body.tools.map((tool: any) => tool.function);
    expect(tools.find((tool: any) => tool.name === "mcp_calc_add")).toMatchObject({
      description: "Adds two numbers.",
      parameters: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } } },
    });
    expect(tools.map((tool: any) => tool.name)).toContain("mcp_calc_fail");
    const agentRow = run.steps.find((step) => step.key === "answer")!;
    const calls = run.steps.filter((step) => step.parentId === agentRow.id);
    expect(calls.map((call) => [call.status, call.input])).toEqual([["SUCCEEDED", { tool: "mcp_calc_add", arguments: { a: 20, b: 22 } }]]);
    expect(calls[0]!.output).toMatchObject({ structuredContent: { sum: 42 }, isError: false });
    expect(mcp.calls.at(-1)).toEqual({ tool: "add", args: { a: 20, b: 22 }, key: SERVER_KEY });
  });
});
