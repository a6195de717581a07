import { createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { matchesAnyGlob } from "./model-registry.ts";

export type PullOptions = {
  /** `owner/name` on the hub. */
  repoId: string;
  /** Hub base URL (HF_ENDPOINT): https://huggingface.co or a mirror. */
  hubUrl: string;
  revision?: string;
  /** Folder the export lands in. */
  outDir: string;
  /** Globs of repository paths to fetch; default: configs, tokenizers and full-precision ONNX graphs. */
  include?: string[];
  token?: string;
  onFile?: (file: string, bytes: number) => void;
  onBytes?: (bytes: number) => void;
};

/** Standard exports keep fp32 graphs as onnx/<name>.onnx and variants as onnx/<name>_<variant>.onnx. */
const VARIANT = /_(quantized|fp16|int8|uint8|q4|q4f16|bnb4)\.onnx$/;
const DEFAULT_INCLUDE = ["*.json", "*.txt", "*.model", "onnx/*.onnx", "onnx/*.onnx_data"];

/**
 * Downloads a Hugging Face ONNX export (for a machine with internet; the
 * runtime itself never reaches a hub). Files land in a temporary folder that
 * is renamed into place only when every file arrived, so a failed pull leaves nothing.
 */
export async function pullExport(options: PullOptions): Promise<{ outDir: string; files: string[]; bytes: number }> {
  if (!/^[\w.-]+\/[\w.-]+$/.test(options.repoId)) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, `repository id must look like owner/name, got ${JSON.stringify(options.repoId)}`);
  }
  const revision = options.revision ?? "main";
  const base = options.hubUrl.replace(/\/+$/, "");
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  const info = await fetchHub(`${base}/api/models/${options.repoId}/revision/${encodeURIComponent(revision)}`, headers, options.repoId);
  const listing = (await info.json()) as { siblings?: Array<{ rfilename: string }> };
  const include = options.include ?? DEFAULT_INCLUDE;
  const files = (listing.siblings ?? [])
    .map((sibling) => sibling.rfilename)
    .filter((file) => matchesAnyGlob(file, include) && (options.include || !VARIANT.test(file)))
    .filter((file) => !file.split("/").some((part) => part === ".." || part === ""));
  if (!files.some((file) => file.endsWith(".onnx"))) {
    throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, `${options.repoId} has no ONNX graphs matching ${include.join(", ")}`, {
      model: options.repoId,
    });
  }

  const partial = `${options.outDir}.partial-${process.pid}`;
  await fs.rm(partial, { recursive: true, force: true });
  let bytes = 0;
  try {
    for (const file of files) {
      const url = `${base}/${options.repoId}/resolve/${encodeURIComponent(revision)}/${file.split("/").map(encodeURIComponent).join("/")}`;
      const response = await fetchHub(url, headers, options.repoId);
      const target = path.join(partial, file);
      await fs.mkdir(path.dirname(target), { recursive: true });
      let fileBytes = 0;
      await pipeline(
        Readable.fromWeb(response.body as import("node:stream/web").ReadableStream),
        async function* count(chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            fileBytes += chunk.length;
            options.onBytes?.(chunk.length);
            yield chunk;
          }
        },
        createWriteStream(target),
      );
      bytes += fileBytes;
      options.onFile?.(file, fileBytes);
    }
    await fs.rm(options.outDir, { recursive: true, force: true });
    await fs.mkdir(path.dirname(options.outDir), { recursive: true });
    await fs.rename(partial, options.outDir);
  } catch (error) {
    await fs.rm(partial, { recursive: true, force: true });
    throw error;
  }
  return { outDir: options.outDir, files, bytes };
}

async function fetchHub(url: string, headers: Record<string, string>, repoId: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { headers, redirect: "follow" });
  } catch (error) {
    throw new TesseraError(ErrorCode.FETCH_FAILED, `cannot reach the hub at ${new URL(url).origin}: ${(error as Error).message}`);
  }
  if (response.status === 404 || response.status === 401) {
    throw new TesseraError(ErrorCode.MODEL_NOT_FOUND, `${repoId}: ${response.status} from ${url}`, { model: repoId });
  }
  if (!response.ok || !response.body) throw new TesseraError(ErrorCode.FETCH_FAILED, `${repoId}: HTTP ${response.status} from ${url}`);
  return response;
}
