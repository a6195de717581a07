import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/* `tessera mcp config` and `tessera mcp stdio` against a real gateway: the SDK's stdio client starts the CLI. */

let t: TestApp;
let key: string;
let base: string;

beforeAll(async () => {
  t = await startTestApp();
  ({ key } = await t.createProject());
  base = t.url.replace(/\/graphql$/, "");
});

afterAll(async () => {
  await t?.close();
});

function cliEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value;
  return { ...env, TESSERA_URL: base, TESSERA_API_KEY: key };
}

describe("tessera mcp", () => {
  it("config prints the snippet for HTTP (with the key only when asked) and for stdio", async () => {
    const run = (args: string[]) => promisify(execFile)("node", ["bin/tessera.js", "mcp", "config", ...args], { env: cliEnv(), timeout: 60_000 });
    const plain = JSON.parse((await run([])).stdout);
    expect(plain).toEqual({ mcpServers: { tessera: { type: "http", url: `${base}/mcp`, headers: { Authorization: "Bearer <your Tessera API key>" } } } });
    const withKey = JSON.parse((await run(["--with-key", "--name", "mine"])).stdout);
    expect(withKey.mcpServers.mine.headers.Authorization).toBe(`Bearer ${key}`);
    const stdio = JSON.parse((await run(["--stdio"])).stdout);
    expect(stdio.mcpServers.tessera).toMatchObject({ command: "npx", args: ["tessera", "mcp", "stdio"], env: { TESSERA_URL: base } });
  }, 240_000); // three CLI starts (tsx) on a loaded machine

  it("stdio bridges an MCP client that starts local servers to the gateway's /mcp", async () => {
    const client = new Client({ name: "stdio-test", version: "1.0.0" });
    const transport = new StdioClientTransport({ command: "node", args: ["bin/tessera.js", "mcp", "stdio"], env: cliEnv(), stderr: "pipe" });
    try {
      await client.connect(transport, { timeout: 60_000 });
      expect(client.getServerVersion()?.name).toBe("tessera");
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(expect.arrayContaining(["search", "ingest", "get_asset"]));
      const missing = await client.callTool({ name: "get_asset", arguments: { id: "00000000-0000-0000-0000-000000000000" } });
      expect(missing.isError).toBe(true);
      expect((missing.content as Array<{ text: string }>)[0]!.text).toMatch(/^NOT_FOUND/);
      await client.ping();
    } finally {
      await client.close();
    }
  }, 180_000);
});
