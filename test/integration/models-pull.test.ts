import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pullExport } from "../../services/models/model-hub.ts";
import { writeTinyClipExport } from "../support/fixture-models/tiny-clip.ts";

const run = promisify(execFile);

/*
 * `tessera models pull` against a local HTTP server that speaks the hub's
 * two routes (model info with its file list, and file downloads) and serves
 * a CLIP export this test writes.
 */
let server: http.Server;
let hubUrl: string;
let exportDir: string;
let workDir: string;
const requests: string[] = [];

beforeAll(async () => {
  workDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-pull-"));
  exportDir = path.join(workDir, "hub", "tiny-clip");
  await writeTinyClipExport(exportDir);
  // A quantized variant the default pull must skip.
  await fs.writeFile(path.join(exportDir, "onnx", "text_model_quantized.onnx"), "quantized bytes");
  const files = await listFiles(exportDir);
  server = http.createServer(async (request, response) => {
    requests.push(request.url!);
    const info = request.url!.match(/^\/api\/models\/acme\/tiny-clip\/revision\/main$/);
    const download = request.url!.match(/^\/acme\/tiny-clip\/resolve\/main\/(.+)$/);
    if (info) {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ id: "acme/tiny-clip", siblings: files.map((rfilename) => ({ rfilename })) }));
    } else if (download && files.includes(decodeURIComponent(download[1]!))) {
      try {
        response.end(await fs.readFile(path.join(exportDir, decodeURIComponent(download[1]!))));
      } catch {
        response.statusCode = 404;
        response.end("gone");
      }
    } else {
      response.statusCode = 404;
      response.end("not found");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  hubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await fs.rm(workDir, { recursive: true, force: true });
});

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const relative = path.posix.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(dir, relative)));
    else out.push(relative);
  }
  return out.sort();
}

describe("models pull", () => {
  it("downloads the export's configs and full-precision graphs, byte for byte, and skips variants", async () => {
    const outDir = path.join(workDir, "models-a", "tiny-clip");
    const result = await pullExport({ repoId: "acme/tiny-clip", hubUrl, outDir });
    const pulled = await listFiles(outDir);
    expect(pulled).toEqual([
      "config.json",
      "onnx/text_model.onnx",
      "onnx/vision_model.onnx",
      "preprocessor_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    for (const file of pulled) expect(await fs.readFile(path.join(outDir, file))).toEqual(await fs.readFile(path.join(exportDir, file)));
    expect(result.files).toHaveLength(6);
    expect(requests.some((url) => url.includes("quantized"))).toBe(false);
  });

  it("a repository the hub does not have is MODEL_NOT_FOUND and writes nothing", async () => {
    const modelsDir = path.join(workDir, "models-b");
    const error = await pullExport({ repoId: "acme/missing", hubUrl, outDir: path.join(modelsDir, "missing") }).catch((reason) => reason);
    expect(error.code).toBe("MODEL_NOT_FOUND");
    await expect(fs.readdir(modelsDir)).rejects.toThrow(/ENOENT/);
  });

  it("a file that fails midway leaves no half-written export behind", async () => {
    const modelsDir = path.join(workDir, "models-c");
    await fs.mkdir(modelsDir);
    // Listed by the hub, but its download fails.
    await fs.rename(path.join(exportDir, "tokenizer.json"), path.join(exportDir, "tokenizer.json.gone"));
    try {
      const failed = await pullExport({ repoId: "acme/tiny-clip", hubUrl, outDir: path.join(modelsDir, "tiny-clip") }).catch((reason) => reason);
      expect(failed.code).toBe("MODEL_NOT_FOUND");
      expect(await fs.readdir(modelsDir)).toEqual([]);
    } finally {
      await fs.rename(path.join(exportDir, "tokenizer.json.gone"), path.join(exportDir, "tokenizer.json"));
    }
  });

  it("refuses a repository id that is not owner/name", async () => {
    const error = await pullExport({ repoId: "../../etc", hubUrl, outDir: path.join(workDir, "x") }).catch((reason) => reason);
    expect(error.code).toBe("BAD_USER_INPUT");
  });

  it("through the CLI: pull into MODELS_DIR, then `models list` shows the export served by the clip manifest", async () => {
    const modelsDir = path.join(workDir, "models-cli");
    const env = { ...process.env, MODELS_DIR: modelsDir, LOG_LEVEL: "silent" };
    const pulled = await run("npx", ["tsx", "services/cli/main.ts", "models", "pull", "acme/tiny-clip", "--hub", hubUrl], { env });
    expect(pulled.stdout.trim()).toBe(path.join(modelsDir, "tiny-clip"));
    const listed = await run("npx", ["tsx", "services/cli/main.ts", "models", "list", "--json"], { env });
    const models = JSON.parse(listed.stdout).models as Array<{ name: string; served: boolean; space: string | null; dimensions: number | null }>;
    expect(models.find((model) => model.name === "tiny-clip")).toMatchObject({ served: true, space: "image-text", dimensions: 16 });
    expect(models.find((model) => model.name === "silero-vad")).toMatchObject({ served: true });
  });
});
