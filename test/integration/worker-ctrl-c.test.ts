import { execFile, spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingestContent } from "../../services/assets/ingest-service.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
const tsx = path.join(root, "node_modules", ".bin", "tsx");
let t: TestApp;
let scratch: string;

beforeAll(async () => {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-ctrl-c-"));
  await fs.mkdir(path.join(scratch, "models"));
  t = await startTestApp({ env: { MODELS_DIR: path.join(scratch, "models") } });
});
afterAll(async () => {
  await t?.close();
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
});

describe("Ctrl-C in the terminal of a worker", () => {
  it("lets the video being decoded finish (the job succeeds, the asset is READY) before the worker exits", async () => {
    const video = path.join(scratch, "clip.mp4");
    await promisify(execFile)("ffmpeg", [
      "-v", "error", "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-t", "20",
      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", video,
    ]);
    const { config } = t.app;
    // The worker leads its own process group, as `npm start` does in a terminal: Ctrl-C signals the whole group.
    const worker = spawn(tsx, ["services/worker/main.ts"], {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        DATABASE_URL: TEST_DATABASE_URL,
        REDIS_URL: TEST_REDIS_URL,
        QUEUE_PREFIX: config.QUEUE_PREFIX,
        DATA_DIR: config.DATA_DIR,
        MODELS_DIR: config.MODELS_DIR,
        ...(config.WEAVIATE_URL ? { WEAVIATE_URL: config.WEAVIATE_URL } : {}),
        LOG_LEVEL: "info",
      },
    });
    let output = "";
    worker.stdout.on("data", (chunk) => (output += chunk));
    worker.stderr.on("data", (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => worker.on("exit", resolve));
    try {
      while (!output.includes("worker started")) await new Promise((resolve) => setTimeout(resolve, 50));
      const { projectId } = await t.createProject();
      const { asset, job } = await ingestContent(t.app, projectId, {
        bytes: await fs.readFile(video),
        modality: "VIDEO",
        mimeType: "video/mp4",
        source: "upload",
        filename: "clip.mp4",
      });
      // ffmpeg names the blob (by its sha256) on its command line: signal once it decodes this asset.
      for (let tries = 0; ; tries++) {
        const found = await promisify(execFile)("pgrep", ["-f", `ffmpeg .*${asset.sha256}`]).then(() => true, () => false);
        if (found) break;
        if (tries > 600) throw new Error(`ffmpeg never ran:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      process.kill(-worker.pid!, "SIGINT");
      expect(await exited, output).toBe(0);
      expect(output).toContain("shutting down");
      const after = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
      const jobAfter = await t.app.db.job.findUniqueOrThrow({ where: { id: job.id } });
      expect({ asset: after.status, job: jobAfter.status, error: jobAfter.error }).toEqual({ asset: "READY", job: "SUCCEEDED", error: null });
    } finally {
      if (worker.exitCode === null) process.kill(-worker.pid!, "SIGKILL");
    }
  }, 90_000);
});
