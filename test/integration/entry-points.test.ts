/**
 * Every entry point as a user meets it: `--help` prints usage and exits 0, a bad argument says why (exit 64),
 * never a stack trace; `.env` is read from the working directory without overriding the real environment;
 * `tessera --version`, `--url` and `--api-key`; `tessera keys create` on a database without tables says to migrate.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
const tsx = path.join(root, "node_modules", ".bin", "tsx");
const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version;
const STACK_TRACE = /\n\s+at /;

/** A variable-free environment: only what a process needs to start, nothing of this test's own. */
function baseEnv(env: Record<string, string>) {
  const { TESSERA_URL: _url, TESSERA_API_KEY: _key, DATABASE_URL: _db, ...rest } = process.env;
  return { ...rest, LOG_LEVEL: "silent", ...env };
}

function run(command: string, args: string[], options: { env?: Record<string, string>; cwd?: string } = {}, timeoutMs = 60_000) {
  return new Promise<{ code: number | null; stdout: string; output: string }>((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? root, env: baseEnv(options.env ?? {}) });
    let stdout = "";
    let output = "";
    child.stdout.on("data", (chunk) => ((stdout += chunk), (output += chunk)));
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")} did not exit within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, output });
    });
  });
}

const cli = (args: string[], options?: { env?: Record<string, string>; cwd?: string }) => run(process.execPath, [path.join(root, "bin/tessera.js"), ...args], options);
const service = (entry: string, args: string[], options?: { env?: Record<string, string>; cwd?: string }) => run(tsx, [path.join(root, entry), ...args], options);

const temporary: string[] = [];
afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});
function folderWithEnv(text: string) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-env-"));
  temporary.push(dir);
  writeFileSync(path.join(dir, ".env"), text);
  return dir;
}

// Each spawn starts tsx (seconds on a loaded machine); several per test.
describe("--help and bad arguments", { timeout: 240_000 }, () => {
  // A bad DATABASE_URL: an entry point that ignored --help would stop at the configuration (exit 78), not start.
  const env = { DATABASE_URL: "nope" };

  it.each([
    ["npm start", "services/main.ts"],
    ["the gateway", "services/gateway/main.ts"],
    ["the worker", "services/worker/main.ts"],
  ])("%s prints its usage for --help and exits 0", async (_name, entry) => {
    const result = await service(entry, ["--help"], { env });
    expect(result.output).not.toMatch(STACK_TRACE);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: /);
  });

  it("the worker's usage names its options", async () => {
    const result = await service("services/worker/main.ts", ["--help"], { env });
    for (const option of ["--queues", "--concurrency", "--device", "--models", "--remote-models"]) expect(result.stdout).toContain(option);
  });

  it("a bad argument says why, with the usage, exit 64, no stack trace", async () => {
    for (const [entry, args, why] of [
      ["services/worker/main.ts", ["--queues", "nope"], "unknown queue(s): nope"],
      ["services/worker/main.ts", ["--bogus"], "--bogus"],
      ["services/gateway/main.ts", ["--bogus"], "--bogus"],
    ] as const) {
      const result = await service(entry, [...args], { env });
      expect(result.output).not.toMatch(STACK_TRACE);
      expect(result.code).toBe(64);
      expect(result.output).toContain(why);
      expect(result.output).toContain("Usage: ");
    }
  });

  it("the CLI prints its usage, its global options among it", async () => {
    const result = await cli(["--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Usage: tessera");
    for (const option of ["--version", "--url", "--api-key"]) expect(result.stdout).toContain(option);
  });

  it("`tessera --version` prints package.json's version", async () => {
    const result = await cli(["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(version);
  });
});

describe(".env", { timeout: 240_000 }, () => {
  it("is read by the services from their working directory; the real environment wins over it", async () => {
    const dir = folderWithEnv("PORT=eighty\nLOG_LEVEL=loud\n");
    const result = await service("services/gateway/main.ts", [], { cwd: dir, env: { LOG_LEVEL: "silent" } });
    expect(result.code).toBe(78);
    expect(result.output).toContain('PORT: ');
    expect(result.output).toContain('"eighty"');
    expect(result.output).not.toContain("LOG_LEVEL");
  });

  it("is read by the CLI; --url and --api-key win over it", async () => {
    const dir = folderWithEnv("TESSERA_URL=http://127.0.0.1:1\nTESSERA_API_KEY=tsk_from_env_file\n");
    const fromFile = await cli(["search", "cats"], { cwd: dir });
    expect(fromFile.code).toBe(1);
    expect(fromFile.output).toContain("cannot reach the gateway at http://127.0.0.1:1/graphql");

    const fromFlags = await cli(["--url", "http://127.0.0.1:2", "search", "cats"], { cwd: dir });
    expect(fromFlags.output).toContain("cannot reach the gateway at http://127.0.0.1:2/graphql");
    // After the subcommand too.
    const after = await cli(["search", "cats", "--url", "http://127.0.0.1:3"], { cwd: dir });
    expect(after.output).toContain("cannot reach the gateway at http://127.0.0.1:3/graphql");
  });

  it("--api-key stands in for TESSERA_API_KEY", async () => {
    const without = await cli(["--url", "http://127.0.0.1:1", "search", "cats"]);
    expect(without.code).toBe(1);
    expect(without.output).toContain("set TESSERA_API_KEY");
    const withKey = await cli(["--url", "http://127.0.0.1:1", "--api-key", "tsk_flag", "search", "cats"]);
    expect(withKey.output).not.toContain("set TESSERA_API_KEY");
    expect(withKey.output).toContain("cannot reach the gateway");
  });
});

describe("tessera keys create", { timeout: 240_000 }, () => {
  it("on a database without Tessera's tables, says to run the migrations, and creates nothing", async () => {
    const database = `tessera_empty_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
    const admin = new pg.Client({ connectionString: Object.assign(new URL(TEST_DATABASE_URL), { pathname: "/postgres" }).toString() });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${database}"`);
      const url = Object.assign(new URL(TEST_DATABASE_URL), { pathname: `/${database}` }).toString();
      const result = await cli(["keys", "create", "--project", "demo"], { env: { DATABASE_URL: url } });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.output).toContain("has no Tessera tables");
      expect(result.output).toContain("npm run db:migrate");
      expect(result.output).not.toMatch(STACK_TRACE);
      const empty = new pg.Client({ connectionString: url });
      await empty.connect();
      try {
        const tables = await empty.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`);
        expect(tables.rows).toEqual([]);
      } finally {
        await empty.end();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await admin.end();
    }
  });
});
