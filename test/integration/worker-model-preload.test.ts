import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createAppContext, type AppContext } from "../../services/app/app-context.ts";
import { loadConfig } from "../../services/core/config.ts";
import { createLogger } from "../../services/core/logger.ts";
import { modelAdapters } from "../../services/models/adapters/index.ts";
import { ModelPreloadError } from "../../services/models/local-model-runtime.ts";
import { startProbeServer } from "../../services/observability/probes.ts";
import { parseWorkerOptions } from "../../services/worker/worker-options.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";
import { freePort } from "../support/own-redis.ts";
import { eventually } from "../support/test-app.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

/*
 * MODEL_PRELOAD / `--preload`: a worker loads the named models (and runs one
 * warm-up input through each, so the ONNX sessions exist) right after start,
 * and its /ready answers 503 with a `models` check until every one is loaded.
 * A model that fails keeps it at 503 with the error; a glob that names no
 * model this worker runs stops the start. Without a preload nothing changes.
 * The worker's own pieces run in this process over real PostgreSQL and Redis
 * (as services/worker/main.ts wires them); real worker processes check the
 * command line and the environment, and `npm start` and a lone gateway check
 * that only a process that runs the models waits for them.
 */

type ModelsCheck = { name: string; ok: boolean; error?: string; models: Array<{ model: string; state: string; error?: string; loadMs?: number }> };
type ReadyBody = { status: string; checks: Array<{ name: string; ok: boolean; error?: string } | ModelsCheck> };

const root = path.resolve(import.meta.dirname, "..", "..");
const dirs: string[] = [];
let tinyClipDir: string;

async function probe(base: string): Promise<{ status: number; body: ReadyBody }> {
  const response = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(15_000) });
  return { status: response.status, body: (await response.json()) as ReadyBody };
}

const modelsCheck = (body: ReadyBody) => body.checks.find((check) => check.name === "models") as ModelsCheck | undefined;

async function tempDir(prefix: string) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** A worker's app (its models in `modelsDir`) and its probe server, as services/worker/main.ts starts them. */
async function startWorkerParts(modelsDir: string, models: string[]) {
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    DATA_DIR: path.join(modelsDir, "data"),
    MODELS_DIR: modelsDir,
    QUEUE_PREFIX: `test-preload-${randomUUID().slice(0, 8)}`,
  });
  const app: AppContext = await createAppContext(config, createLogger("silent"));
  app.models.configure({ models });
  const probes = await startProbeServer(0, "127.0.0.1", { deps: app });
  const base = `http://127.0.0.1:${probes.address.port}`;
  return {
    app,
    base,
    async close() {
      await probes.close();
      await app.close();
    },
  };
}

beforeAll(async () => {
  tinyClipDir = await tempDir("tessera-preload-clip-");
  await writeTinyClipExport(path.join(tinyClipDir, "clip"));
});

afterAll(async () => {
  await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

describe("a worker with a model preload", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("answers /ready 503 with the model loading until it is loaded, then 200", async () => {
    // The load waits for the test to let it go, so "loading" is seen for sure.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const clipAdapter = modelAdapters["hf-clip"]!;
    const load = clipAdapter.load;
    vi.spyOn(clipAdapter, "load").mockImplementation(async (model, context) => {
      await released;
      return load(model, context);
    });
    const worker = await startWorkerParts(tinyClipDir, ["clip", "use-lite-sentence"]);
    try {
      const settled = worker.app.models.startPreload(["clip*"]);
      const loading = await probe(worker.base);
      expect(loading.status).toBe(503);
      expect(loading.body.status).toBe("not ready");
      expect(modelsCheck(loading.body)).toMatchObject({ ok: false, models: [{ model: "clip", state: "loading" }] });
      expect(modelsCheck(loading.body)!.error).toMatch(/clip/);
      // The dependencies themselves are fine: only the models hold it back.
      expect(loading.body.checks.filter((check) => check.name !== "models").every((check) => check.ok)).toBe(true);

      release();
      await settled;
      const ready = await probe(worker.base);
      expect(ready.status).toBe(200);
      expect(modelsCheck(ready.body)).toMatchObject({ ok: true, models: [{ model: "clip", state: "loaded", loadMs: expect.any(Number) }] });
      // Only the preloaded model is loaded: the sentence model still loads on its first job.
      expect(worker.app.models.loadedModels()).toEqual(["clip"]);
    } finally {
      release();
      await worker.close();
    }
  }, 60_000);

  it("keeps /ready at 503 with the error of a model whose file is broken", async () => {
    const modelsDir = await tempDir("tessera-preload-broken-");
    await writeTinyClipExport(path.join(modelsDir, "clip"));
    await fs.writeFile(path.join(modelsDir, "clip", "onnx", "vision_model.onnx"), Buffer.from("this is not a protobuf"));
    const worker = await startWorkerParts(modelsDir, ["clip"]);
    try {
      await worker.app.models.startPreload(["clip"]);
      const failed = await probe(worker.base);
      expect(failed.status).toBe(503);
      const check = modelsCheck(failed.body)!;
      expect(check).toMatchObject({ ok: false, models: [{ model: "clip", state: "failed", error: expect.stringMatching(/^model clip: /) }] });
      expect(check.error).toMatch(/clip failed/);
      // Not retried: it stays not ready until the worker is restarted.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect((await probe(worker.base)).status).toBe(503);
    } finally {
      await worker.close();
    }
  }, 60_000);

  it("stops at a shutdown: no later model starts loading, and the cut-short load is not reported as failed", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const gated = [modelAdapters["hf-clip"]!, modelAdapters["tfjs-universal-sentence-encoder"]!].map((adapter) => {
      const load = adapter.load;
      return vi.spyOn(adapter, "load").mockImplementation(async (model, context) => {
        await released;
        return load(model, context);
      });
    });
    const worker = await startWorkerParts(tinyClipDir, ["clip", "use-lite-sentence"]);
    const settled = worker.app.models.startPreload(["served"]);
    await eventually(async () => worker.app.models.preloads().some((preload) => preload.state === "loading"));
    // The runtime's close (SIGTERM's) waits for the load in flight, which the test then lets go.
    const closed = worker.app.models.close();
    release();
    await closed;
    await settled;
    await worker.close();
    expect(gated.reduce((calls, spy) => calls + spy.mock.calls.length, 0)).toBe(1);
    expect(worker.app.models.preloads().map((preload) => preload.state)).not.toContain("failed");
  }, 60_000);

  it("refuses a glob that names no model this worker runs, before loading anything", async () => {
    const worker = await startWorkerParts(tinyClipDir, ["clip"]);
    try {
      // use-lite-sentence exists but this worker does not serve it (--models clip).
      expect(() => worker.app.models.startPreload(["clip", "use-lite-*"])).toThrow(ModelPreloadError);
      expect(() => worker.app.models.startPreload(["nothing-like-this*"])).toThrow(/MODEL_PRELOAD.*nothing-like-this\* names no model this worker runs.*clip/s);
      expect(worker.app.models.loadedModels()).toEqual([]);
      // Nothing was started, so /ready does not wait for anything.
      expect((await probe(worker.base)).status).toBe(200);
    } finally {
      await worker.close();
    }
  }, 60_000);

  it("without a preload changes nothing: ready at once, no models check, models load on their first job", async () => {
    const worker = await startWorkerParts(tinyClipDir, ["clip"]);
    try {
      const ready = await probe(worker.base);
      expect(ready.status).toBe(200);
      expect(modelsCheck(ready.body)).toBeUndefined();
      expect(worker.app.models.loadedModels()).toEqual([]);
      await worker.app.models.embedText(["a first job"]);
      expect(worker.app.models.loadedModels()).toEqual(["clip"]);
    } finally {
      await worker.close();
    }
  }, 60_000);

  it("takes --preload on the command line (globs, or served)", () => {
    expect(parseWorkerOptions(["--preload", "clip-*, whisper-*"]).preload).toEqual(["clip-*", "whisper-*"]);
    expect(parseWorkerOptions(["--preload", "served"]).preload).toEqual(["served"]);
    expect(parseWorkerOptions([]).preload).toBeUndefined();
    expect(() => parseWorkerOptions(["--preload", "Not A Glob"])).toThrow(/--preload/);
  });
});

describe("the processes", () => {
  function startWorker(args: string[], env: Record<string, string>, entry = "services/worker/main.ts") {
    const child = spawn(path.join(root, "node_modules", ".bin", "tsx"), [entry, ...args], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: TEST_DATABASE_URL,
        REDIS_URL: TEST_REDIS_URL,
        LOG_LEVEL: "error",
        LOG_FORMAT: "json",
        QUEUE_PREFIX: `test-preload-${randomUUID().slice(0, 8)}`,
        MODELS_DIR: tinyClipDir,
        DATA_DIR: path.join(tinyClipDir, "data"),
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    child.stderr!.on("data", (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    return { child, exited, output: () => output };
  }

  it("with MODEL_PRELOAD turns ready once its models are loaded, and a glob naming nothing stops its start", async () => {
    const port = await freePort();
    const good = startWorker(["--models", "clip"], { MODEL_PRELOAD: "served", WORKER_HTTP_PORT: String(port) });
    const bad = startWorker(["--models", "clip", "--preload", "whisper-*"], {});
    try {
      // Starting tsx and loading the worker took 43 s on a loaded CI-like machine: room to spare.
      expect(await bad.exited).toBe(1);
      expect(bad.output()).toMatch(/could not start: .*whisper-\* names no model this worker runs/);

      const base = `http://127.0.0.1:${port}`;
      const ready = await eventually(async () => {
        const answer = await probe(base).catch(() => null);
        return answer?.status === 200 ? answer.body : null;
      }, 150_000);
      expect(modelsCheck(ready)).toMatchObject({ ok: true, models: [{ model: "clip", state: "loaded" }] });
      good.child.kill("SIGTERM");
      expect(await good.exited).toBe(0);
    } finally {
      good.child.kill("SIGKILL");
      bad.child.kill("SIGKILL");
    }
  }, 300_000);

  it("npm start's /ready waits for MODEL_PRELOAD's models; a lone gateway's does not (it runs no model)", async () => {
    const [startPort, gatewayPort] = [await freePort(), await freePort()];
    const env = { MODEL_PRELOAD: "clip", HOST: "127.0.0.1" };
    const together = startWorker([], { ...env, PORT: String(startPort) }, "services/main.ts");
    const gateway = startWorker([], { ...env, PORT: String(gatewayPort) }, "services/gateway/main.ts");
    try {
      for (const [port, expected] of [
        [startPort, [{ model: "clip", state: "loaded" }]],
        [gatewayPort, undefined],
      ] as const) {
        const ready = await eventually(async () => {
          const answer = await probe(`http://127.0.0.1:${port}`).catch(() => null);
          return answer?.status === 200 ? answer.body : null;
        }, 150_000);
        expect(modelsCheck(ready)?.models).toEqual(expected === undefined ? undefined : [expect.objectContaining(expected[0])]);
      }
    } finally {
      together.child.kill("SIGKILL");
      gateway.child.kill("SIGKILL");
    }
  }, 300_000);
});
