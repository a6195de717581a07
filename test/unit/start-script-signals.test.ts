import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { expect, it } from "vitest";

// `npm start`, `npm run gateway` and `npm run worker` (and Docker's CMD, `npm start`) must let a busy process drain
// on Ctrl-C or SIGTERM. The tsx CLI relays a signal to its child and SIGKILLs the child when it has not acknowledged
// it within about 60 ms, which a process whose event loop is busy (a loaded machine, issue #15's sigint chaos
// scenario) never does: it died mid-request without a word. Each script's command is run here as npm runs it, with
// its entry point swapped for a busy process that drains, in a process group of its own that gets the signal.
const root = path.resolve(import.meta.dirname, "..", "..");
const scripts = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).scripts as Record<string, string>;
const entries = { start: "services/main.ts", gateway: "services/gateway/main.ts", worker: "services/worker/main.ts" };

for (const [script, entry] of Object.entries(entries)) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`\`npm run ${script}\`'s command lets a busy process drain on ${signal}`, async () => {
      expect(scripts[script]).toContain(entry);
      const command = scripts[script]!.replace(entry, "test/support/busy-draining-process.ts");
      const child = spawn("sh", ["-c", command], {
        cwd: root,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, PATH: `${path.join(root, "node_modules", ".bin")}:${process.env.PATH}` },
      });
      let output = "";
      child.stdout.on("data", (chunk) => (output += chunk));
      child.stderr.on("data", (chunk) => (output += chunk));
      // Closed once every process holding the pipes (sh, tsx, node) is gone; sh's own status is the shell's business.
      const closed = new Promise<void>((resolve) => child.on("close", () => resolve()));
      try {
        for (let tries = 0; tries < 300 && !output.includes("started"); tries++) await new Promise((resolve) => setTimeout(resolve, 100));
        expect(output).toContain("started");
        await new Promise((resolve) => setTimeout(resolve, 500));
        process.kill(-child.pid!, signal);
        await closed;
        expect(output).toContain(`"draining":"${signal}"`);
        expect(output).toContain('"drained":true');
      } finally {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }, 60_000);
  }
}
