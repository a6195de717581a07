import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
/*
 * Node itself with tsx's loader, as `npm start` starts a process, not the tsx CLI: the CLI relays a SIGTERM to its
 * child and, when the child has not said within 30 ms that it got it, kills it and exits 143 itself, which a
 * loaded machine reached (the worker drains; the wrapper did not wait for it).
 */
const typescriptNode = [process.execPath, "--import", "tsx"] as const;
const spawnEntry = (entry: string, env: NodeJS.ProcessEnv) => spawn(typescriptNode[0], [...typescriptNode.slice(1), entry], { cwd: root, env });

function run(entry: string, env: Record<string, string>, timeoutMs = 20_000) {
  return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawnEntry(entry, { ...process.env, LOG_LEVEL: "silent", ...env });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`process did not exit within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Starts `entry` with info logs, sends SIGTERM once its stdout shows `marker`, and waits for it to exit. */
async function sigtermOnceLogged(entry: string, env: Record<string, string>, marker: string, startTimeoutMs = 20_000) {
  const child = spawnEntry(entry, { ...process.env, DATABASE_URL: TEST_DATABASE_URL, LOG_LEVEL: "info", ...env });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${entry} did not start within ${startTimeoutMs} ms:\n${output}`));
    }, startTimeoutMs);
    child.stdout.on("data", () => {
      if (output.includes(marker)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.kill("SIGTERM");
  return { code: await exited, output };
}

describe("process start-up", () => {
  it("exits at once naming a bad variable", async () => {
    const result = await run("services/main.ts", { DATABASE_URL: "nope" });
    expect(result.code).toBe(78);
    expect(result.output).toContain("DATABASE_URL");
  });

  it("says which dependency is down, where, and how to start it, instead of hanging", async () => {
    const result = await run("services/worker/main.ts", { DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: "redis://127.0.0.1:1" });
    expect(result.code).toBe(69);
    expect(result.output).toContain("Redis is not reachable at 127.0.0.1:1");
    expect(result.output).toContain("docker compose up -d redis");
  });

  it("says so when its port is taken, instead of crashing with a stack trace", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const result = await run("services/gateway/main.ts", { DATABASE_URL: TEST_DATABASE_URL, PORT: String(port) });
      expect(result.code).toBe(1);
      expect(result.output).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(result.output).not.toMatch(/\n\s+at /);
    } finally {
      blocker.close();
    }
  });

  it("stops a worker cleanly on SIGTERM", async () => {
    const { code, output } = await sigtermOnceLogged("services/worker/main.ts", { QUEUE_PREFIX: "test-sigterm" }, "worker started");
    expect(code).toBe(0);
    expect(output).toContain("shutting down");
  });

  it("drains on a SIGTERM that arrives while start() is still running, instead of dying by the signal", async () => {
    const { code, output } = await sigtermOnceLogged("test/support/slow-start-process.ts", {}, "slow-start started");
    expect(code).toBe(0);
    expect(output).toContain("shutting down");
  });

  it("writes readable lines with LOG_FORMAT=pretty (what a terminal gets by default), JSON otherwise", async () => {
    const logsOf = async (format: string) => {
      const { code, output } = await sigtermOnceLogged("test/support/slow-start-process.ts", { LOG_FORMAT: format }, "slow-start started", 40_000);
      expect(code).toBe(0);
      return output.split("\n").filter((line) => line.includes("slow-start started"));
    };
    const [pretty] = await logsOf("pretty");
    expect(pretty).toMatch(/INFO.*slow-start started/);
    expect(pretty!.trim().startsWith("{")).toBe(false);
    const [json] = await logsOf("json");
    expect(JSON.parse(json!)).toMatchObject({ level: 30, msg: "slow-start started" });
  }, 120_000);
});
