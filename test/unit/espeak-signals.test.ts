import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..", "..");

/** The pids of `command` processes whose parent is `parentPid`, once there is one. */
async function childrenNamed(parentPid: number, command: string): Promise<number[]> {
  for (let tries = 0; tries < 200; tries++) {
    const found = await promisify(execFile)("pgrep", ["-P", String(parentPid), "-x", command]).then(
      (result) => result.stdout.trim().split("\n").filter(Boolean).map(Number),
      () => [],
    );
    if (found.length > 0) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no ${command} under ${parentPid}`);
}

it("a SIGINT to the parent's process group (Ctrl-C) does not reach espeak-ng: the speech finishes while the parent drains", async () => {
  // A worker-like parent in its own process group, as `npm start` is in a terminal's.
  const parent = spawn(process.execPath, ["--import", "tsx", "test/support/espeak-parent.ts", "400"], { cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  parent.stderr.on("data", (chunk) => (stderr += chunk));
  parent.stdout.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => parent.on("close", (code) => resolve(code)));
  try {
    await childrenNamed(parent.pid!, "espeak-ng");
    process.kill(-parent.pid!, "SIGINT");
    expect(await exited, stderr).toBe(0);
    const results = lines.map((line) => JSON.parse(line)).filter((line) => !line.started);
    // 400 sentences are about two minutes of speech; interrupted, espeak-ng would have failed the request.
    expect(results).toEqual([{ ok: true, durationSec: expect.any(Number) }]);
    expect(results[0].durationSec).toBeGreaterThan(60);
  } finally {
    if (parent.exitCode === null) process.kill(-parent.pid!, "SIGKILL");
  }
}, 60_000);
