import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGateway, type Gateway } from "../../services/gateway/gateway.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Opt-in workflows (`mcp: true`) as tools of Tessera's MCP server, with the real worker: listed with their input
 * schema, run to the end with progress notifications, cancelled by the client's cancellation.
 */

let t: TestApp;
let second: Gateway;
let secondUrl: string;
let slow: Server;
let slowPort: number;
let key: string;
let projectId: string;
const clients: Client[] = [];
const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

async function connect(): Promise<Client> {
  const client = new Client({ name: "tessera-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(t.url.replace(/\/graphql$/, "/mcp")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  clients.push(client);
  return client;
}

async function publish(source: string) {
  const response = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`, { d: source }, key);
  expect(response.errors).toBeUndefined();
}

beforeAll(async () => {
  // An HTTP endpoint that never answers within the test: a step that calls it runs until it is cancelled.
  slow = createServer(() => {});
  await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
  slowPort = (slow.address() as AddressInfo).port;
  t = await startTestApp({ worker: { concurrency: 2 }, env: { URL_ALLOW_HOSTS: `127.0.0.1:${slowPort}` } });
  ({ key, projectId } = await t.createProject());
  second = createGateway(t.app);
  secondUrl = `http://127.0.0.1:${(await second.listen(0, "127.0.0.1")).port}/mcp`;
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => {});
  await second?.close();
  await t?.close();
  slow?.closeAllConnections();
  await new Promise<void>((resolve) => (slow ? slow.close(() => resolve()) : resolve()));
});

describe("opt-in workflows as MCP tools", () => {
  it("offers only workflows with mcp: true, by slug, with their inputs as the input schema", async () => {
    const offered = unique("shout");
    const hidden = unique("quiet");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${offered}
description: Turns a text into capitals.
mcp: true
inputs:
  text: { type: string }
steps:
  - id: upper
    uses: transform
    with: { loud: "\${{ $uppercase(inputs.text) }}" }
outputs:
  loud: "\${{ steps.upper.output.loud }}"
`);
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${hidden}
inputs:
  text: { type: string }
steps:
  - id: same
    uses: transform
    with: { text: "\${{ inputs.text }}" }
`);
    const client = await connect();
    const { tools } = await client.listTools();
    const tool = tools.find((candidate) => candidate.name === offered);
    expect(tool).toMatchObject({ description: "Turns a text into capitals.", inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] } });
    expect(tools.map((candidate) => candidate.name)).not.toContain(hidden);
  });

  it("runs the workflow, sending progress per finished step, and answers with its outputs", async () => {
    const slug = unique("three-steps");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
mcp: true
inputs:
  text: { type: string }
steps:
  - id: one
    uses: transform
    with: { value: "\${{ inputs.text & '1' }}" }
  - id: two
    uses: transform
    with: { value: "\${{ steps.one.output.value & '2' }}" }
  - id: three
    uses: transform
    with: { value: "\${{ steps.two.output.value & '3' }}" }
outputs:
  value: "\${{ steps.three.output.value }}"
`);
    const client = await connect();
    const progress: Array<{ progress: number; total?: number }> = [];
    const result = await client.callTool({ name: slug, arguments: { text: "x" } }, undefined, {
      onprogress: (update) => progress.push({ progress: update.progress, total: update.total }),
      timeout: 60_000,
    });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ status: "SUCCEEDED", output: { value: "x123" } });
    expect(progress.map((update) => update.progress)).toEqual([1, 2, 3]);
    expect(progress.every((update) => update.total === 3)).toBe(true);
    const run = await t.app.db.run.findUniqueOrThrow({ where: { id: (result.structuredContent as { runId: string }).runId } });
    expect(run.status).toBe("SUCCEEDED");
  });

  it("a bad input is an isError result and starts no run", async () => {
    const slug = unique("typed");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
mcp: true
inputs:
  count: { type: number }
steps:
  - id: same
    uses: transform
    with: { n: "\${{ inputs.count }}" }
`);
    const client = await connect();
    const before = await t.app.db.run.count();
    const result = await client.callTool({ name: slug, arguments: { count: "many" } });
    expect(result.isError).toBe(true);
    // The tool exists: the refusal is about the input, not an unknown tool.
    expect((result.content as Array<{ text: string }>)[0]!.text).toMatch(/count/);
    expect((result.content as Array<{ text: string }>)[0]!.text).not.toMatch(/not found/i);
    expect(await t.app.db.run.count()).toBe(before);
  });

  it("the client's cancellation cancels the run", async () => {
    const slug = unique("slow");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
mcp: true
steps:
  - id: hang
    uses: http
    with: { url: "http://127.0.0.1:${slowPort}/never" }
`);
    const client = await connect();
    const controller = new AbortController();
    const call = client.callTool({ name: slug, arguments: {} }, undefined, { signal: controller.signal, timeout: 120_000 });
    const run = await eventually(async () => {
      const row = await t.app.db.run.findFirst({ where: { projectId, workflowVersion: { workflow: { slug } } }, include: { steps: true } });
      return row?.steps.some((step) => step.status === "RUNNING") ? row : null;
    }, 30_000);
    controller.abort("enough");
    await expect(call).rejects.toThrow();
    const ended = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: run.id } });
      return row.status === "CANCELLED" ? row : null;
    }, 30_000);
    expect(ended.status).toBe("CANCELLED");
  });

  it("a notifications/cancelled sent to another gateway cancels the run the call started (stateless replicas)", async () => {
    const slug = unique("slow-replica");
    await publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
mcp: true
steps:
  - id: hang
    uses: http
    with: { url: "http://127.0.0.1:${slowPort}/never" }
`);
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": "2025-11-25" };
    const post = (url: string, message: unknown) => fetch(url, { method: "POST", headers, body: JSON.stringify(message) });
    // The call goes to the first gateway and stays open; the cancellation goes to the second.
    const call = post(t.url.replace(/\/graphql$/, "/mcp"), { jsonrpc: "2.0", id: "call-77", method: "tools/call", params: { name: slug, arguments: {} } });
    const run = await eventually(async () => {
      const row = await t.app.db.run.findFirst({ where: { projectId, workflowVersion: { workflow: { slug } } }, include: { steps: true } });
      return row?.steps.some((step) => step.status === "RUNNING") ? row : null;
    }, 30_000);
    const cancel = await post(secondUrl, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: "call-77", reason: "enough" } });
    expect(cancel.status).toBe(202);
    const ended = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: run.id } });
      return row.status === "CANCELLED" ? row : null;
    }, 30_000);
    expect(ended.status).toBe("CANCELLED");
    // The open call answers too: the run ended CANCELLED.
    const answer = await (await call).text();
    expect(answer).toContain("CANCELLED");
  });
});
