import type { Command } from "commander";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { apiKey, gatewayEndpoint } from "../gateway-client.ts";

/** The gateway's /mcp URL, from TESSERA_URL (the server or its /graphql URL). */
export function mcpEndpoint(env = process.env): URL {
  const url = gatewayEndpoint(env);
  url.pathname = url.pathname.replace(/\/graphql$/, "/mcp");
  return url;
}

/** What an MCP client's configuration needs to reach this Tessera: over HTTP, or through `tessera mcp stdio`. */
export function mcpClientConfig(options: { name: string; stdio: boolean; key: string }, env = process.env) {
  const url = mcpEndpoint(env).href;
  if (options.stdio) {
    return {
      mcpServers: {
        [options.name]: { command: "npx", args: ["tessera", "mcp", "stdio"], env: { TESSERA_URL: url.replace(/\/mcp$/, ""), TESSERA_API_KEY: options.key } },
      },
    };
  }
  return { mcpServers: { [options.name]: { type: "http", url, headers: { Authorization: `Bearer ${options.key}` } } } };
}

/**
 * Relays JSON-RPC messages between stdin/stdout (a client that only starts local servers) and the gateway's /mcp
 * over Streamable HTTP with the API key, until either side closes.
 */
export async function bridgeStdio(env = process.env): Promise<void> {
  const remote = new StreamableHTTPClientTransport(mcpEndpoint(env), { requestInit: { headers: { authorization: `Bearer ${apiKey(env)}` } } });
  const local = new StdioServerTransport();
  let closing = false;
  const closeBoth = async () => {
    if (closing) return;
    closing = true;
    await Promise.allSettled([remote.close(), local.close()]);
  };
  const closed = new Promise<void>((resolve) => {
    local.onclose = () => void closeBoth().then(resolve);
    remote.onclose = () => void closeBoth().then(resolve);
    process.stdin.once("end", () => void closeBoth().then(resolve));
  });
  local.onmessage = (message) => {
    remote.send(message).catch((error: Error) => {
      // The request cannot reach the gateway: answer it with an error so the client does not wait for ever.
      if ("id" in message && "method" in message) {
        void local.send({ jsonrpc: "2.0", id: message.id, error: { code: -32000, message: `Tessera at ${mcpEndpoint(env).origin}: ${error.message}` } });
      }
    });
  };
  remote.onmessage = (message) => void local.send(message);
  remote.onerror = (error) => process.stderr.write(`tessera mcp stdio: ${error.message}\n`);
  await remote.start();
  await local.start();
  await closed;
}

export function registerMcpCommands(program: Command) {
  const mcp = program.command("mcp").description("use Tessera from MCP clients (assistants, IDEs, agent frameworks)");

  mcp
    .command("config")
    .description("print the configuration snippet an MCP client needs to reach this Tessera (its /mcp endpoint)")
    .option("--name <name>", "the server's name in the client's configuration", "tessera")
    .option("--stdio", "for clients that only start local servers: run `tessera mcp stdio` instead of connecting over HTTP")
    .option("--with-key", "put TESSERA_API_KEY into the snippet (else a placeholder to replace)")
    .action((options: { name: string; stdio?: boolean; withKey?: boolean }) => {
      const key = options.withKey ? apiKey() : "<your Tessera API key>";
      console.log(JSON.stringify(mcpClientConfig({ name: options.name, stdio: options.stdio === true, key }), null, 2));
      if (!options.withKey) console.error("Replace the placeholder with an API key (npx tessera keys create --project <name>), or pass --with-key.");
    });

  mcp
    .command("stdio")
    .description("bridge stdin/stdout to the gateway's /mcp endpoint (TESSERA_URL, TESSERA_API_KEY), for MCP clients that start local servers")
    .action(async () => {
      await bridgeStdio();
    });
}
