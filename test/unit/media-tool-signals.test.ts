import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runMediaTool } from "../../services/assets/media-tool.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
const endless = ["-v", "error", "-re", "-f", "lavfi", "-i", "sine=frequency=440", "-f", "null", "-"];

/** The pids of `command` processes whose parent is `parentPid`, once there is one. */
async function childrenNamed(parentPid: number, command: string): Promise<number[]> {
  for (let tries = 0; tries < 100; tries++) {
    const found = await promisify(execFile)("pgrep", ["-P", String(parentPid), "-x", command]).then(
      (result) => result.stdout.trim().split("\n").filter(Boolean).map(Number),
      () => [],
    );
    if (found.length > 0) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no ${command} under ${parentPid}`);
}

function isAlive(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("media tools and signals", () => {
  for (const signal of ["SIGINT", "SIGTERM", "SIGKILL"] as const) {
    it(`a tool stopped by ${signal} sent to it is a retryable SERVICE_UNAVAILABLE, never CORRUPT_MEDIA`, async () => {
      const run = runMediaTool("ffmpeg", endless, { timeoutMs: 30_000 }).catch((caught) => caught);
      const [pid] = await childrenNamed(process.pid, "ffmpeg");
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(pid!, signal);
      const error = await run;
      expect(error.code).toBe("SERVICE_UNAVAILABLE");
      expect(error.details).toMatchObject({ tool: "ffmpeg" });
    });
  }

  /** A worker-like parent in its own process group, as `npm start` is in a terminal's. */
  function startParent(mode: "drain" | "exit", seconds: number) {
    const parent = spawn(process.execPath, ["--import", "tsx", "test/support/media-tool-parent.ts", mode, String(seconds)], {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: string[] = [];
    let stderr = "";
    parent.stderr.on("data", (chunk) => (stderr += chunk));
    const started = new Promise<void>((resolve) =>
      parent.stdout.on("data", (chunk: Buffer) => {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        if (lines.some((line) => line.includes("started"))) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => parent.on("close", (code) => resolve(code)));
    return { parent, lines, started, exited, stderr: () => stderr };
  }

  it("a SIGINT to the parent's process group (Ctrl-C) does not reach the tool: the run finishes while the parent drains", async () => {
    const { parent, lines, started, exited, stderr } = startParent("drain", 3);
    await started;
    const [tool] = await childrenNamed(parent.pid!, "ffmpeg");
    await new Promise((resolve) => setTimeout(resolve, 500));
    process.kill(-parent.pid!, "SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(isAlive(tool!)).toBe(true);
    expect(await exited, stderr()).toBe(0);
    expect(lines.map((line) => JSON.parse(line))).toContainEqual({ ok: true });
  }, 20_000);

  it("a parent that exits before its tool finished takes the tool's group with it", async () => {
    const { parent, started, exited } = startParent("exit", 30);
    await started;
    const [tool] = await childrenNamed(parent.pid!, "ffmpeg");
    process.kill(-parent.pid!, "SIGINT");
    expect(await exited).toBe(0);
    for (let tries = 0; tries < 40 && isAlive(tool!); tries++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(isAlive(tool!)).toBe(false);
  }, 20_000);
});
