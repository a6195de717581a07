import { createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import {
  AssetDocument,
  AssetContentDocument,
  AssetsDocument,
  type AssetsQuery,
  type AssetStatus,
  DeleteAssetDocument,
  type Modality,
  ReindexAssetDocument,
} from "../../../packages/client/index.ts";
import { gateway, GatewayError } from "../gateway-client.ts";

/** Refusals that pass with time: the project's job quota or rate; waited out this many times per asset. */
const WAIT_CODES = new Set(["QUOTA_EXCEEDED", "RATE_LIMITED"]);
const MAX_WAITS = 30;

/** Every FAILED asset of the project, read before any is re-queued (re-queuing takes them out of the list). */
async function failedAssetIds(): Promise<string[]> {
  const ids: string[] = [];
  let after: string | null = null;
  do {
    const page: AssetsQuery = await gateway().request(AssetsDocument, { status: "FAILED", first: 100, after });
    ids.push(...page.assets.edges.map((edge) => edge.node.id));
    after = page.assets.pageInfo.hasNextPage ? page.assets.pageInfo.endCursor : null;
  } while (after);
  return ids;
}

/** One asset's reindexAsset, waiting out a full job quota or a rate limit; the new job's id. */
async function reindexOne(id: string): Promise<string> {
  for (let waits = 0; ; waits++) {
    try {
      const result = await gateway().request(ReindexAssetDocument, { id });
      return result.reindexAsset.job.id;
    } catch (error) {
      if (!(error instanceof GatewayError && WAIT_CODES.has(error.code)) || waits >= MAX_WAITS) throw error;
      const seconds = Number((error.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds) || 5;
      console.error(`  ${id}: ${error.code}, waiting ${seconds} s`);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }
}

/** A page of at most 100 (the gateway's cap) at a time, up to `limit` assets. */
async function listAssets(limit: number, filter: { status?: AssetStatus; modality?: Modality }) {
  const nodes: AssetsQuery["assets"]["edges"][number]["node"][] = [];
  let after: string | null = null;
  let total = 0;
  do {
    const page: AssetsQuery = await gateway().request(AssetsDocument, { ...filter, first: Math.min(100, limit - nodes.length), after });
    total = page.assets.totalCount;
    nodes.push(...page.assets.edges.map((edge) => edge.node));
    after = page.assets.pageInfo.hasNextPage ? page.assets.pageInfo.endCursor : null;
  } while (after && nodes.length < limit);
  return { nodes, total };
}

export function registerAssetsCommands(program: Command) {
  const assets = program.command("assets").description("manage the project's assets through the gateway (TESSERA_URL, TESSERA_API_KEY)");
  assets
    .command("list")
    .description("the project's assets, newest first: id, modality, MIME type, status, bytes, filename")
    .option("--status <status>", "only PENDING, PROCESSING, READY or FAILED assets")
    .option("--modality <modality>", "only TEXT, IMAGE, AUDIO or VIDEO assets")
    .option("--limit <n>", "at most this many", "50")
    .option("--json", "one JSON object per asset")
    .action(async (options: { status?: string; modality?: string; limit: string; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new Error("--limit takes a whole number above 0");
      const { nodes, total } = await listAssets(limit, {
        ...(options.status ? { status: options.status.toUpperCase() as AssetStatus } : {}),
        ...(options.modality ? { modality: options.modality.toUpperCase() as Modality } : {}),
      });
      for (const asset of nodes) {
        console.log(
          options.json
            ? JSON.stringify(asset)
            : [asset.id, asset.modality, asset.mimeType, asset.status, asset.byteSize, asset.filename ?? ""].join("\t"),
        );
      }
      console.error(`${nodes.length} of ${total} assets`);
    });

  assets
    .command("get")
    .description("one asset as JSON (status, metadata, media, a signed content URL)")
    .argument("<id>", "the asset's id")
    .action(async (id: string) => {
      const { asset } = await gateway().request(AssetDocument, { id });
      console.log(JSON.stringify(asset, null, 2));
    });

  assets
    .command("download")
    .description("save an asset's stored bytes (through its signed content URL)")
    .argument("<id>", "the asset's id")
    .option("-o, --output <path>", "the file to write (default: its filename, or its id, in the working directory); - for stdout")
    .action(async (id: string, options: { output?: string }) => {
      const { asset } = await gateway().request(AssetContentDocument, { id });
      const response = await fetch(asset.contentUrl);
      if (!response.ok || !response.body) throw new Error(`the gateway answered HTTP ${response.status} for the content of ${id}`);
      const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>);
      if (options.output === "-") {
        await pipeline(body, process.stdout);
        return;
      }
      const target = options.output ?? path.basename(asset.filename ?? asset.id);
      // Written beside the target and renamed at the end: an interrupted download leaves no half file under its name.
      const partial = `${target}.part`;
      try {
        await pipeline(body, createWriteStream(partial));
        await fs.rename(partial, target);
      } catch (error) {
        await fs.rm(partial, { force: true });
        throw error;
      }
      console.error(`${target}: ${asset.byteSize} bytes, ${asset.mimeType}`);
    });

  assets
    .command("delete")
    .description("delete assets: their rows, vectors and (unless another asset has the same bytes) blobs")
    .argument("<ids...>", "asset ids")
    .action(async (ids: string[]) => {
      let refused = 0;
      for (const id of ids) {
        try {
          const { deleteAsset } = await gateway().request(DeleteAssetDocument, { id });
          console.log(`${deleteAsset.id} deleted (${deleteAsset.vectorsDeleted} vectors${deleteAsset.blobDeleted ? ", blob" : ""})`);
        } catch (error) {
          if (!(error instanceof GatewayError)) throw error;
          refused++;
          console.error(`${id} not deleted: ${error.message}`);
        }
      }
      if (refused) process.exitCode = 1;
    });
  assets
    .command("reindex")
    .description("queue a new ingest of assets from their stored bytes: the given ids, or every FAILED asset with --failed")
    .argument("[ids...]", "asset ids")
    .option("--failed", "every FAILED asset of the project")
    .action(async (given: string[], options: { failed?: boolean }) => {
      if (given.length > 0 === Boolean(options.failed)) throw new Error("give asset ids or --failed, not both and not neither");
      const ids = options.failed ? await failedAssetIds() : given;
      if (ids.length === 0) {
        console.error("no FAILED assets");
        return;
      }
      let queued = 0;
      const refused: string[] = [];
      for (const [index, id] of ids.entries()) {
        const step = `[${index + 1}/${ids.length}]`;
        try {
          const jobId = await reindexOne(id);
          queued++;
          console.log(`${step} ${id} queued (job ${jobId})`);
        } catch (error) {
          // The gateway went away: the rest are untouched (still FAILED), and running the command again resumes.
          if (!(error instanceof GatewayError)) {
            throw new Error(`${(error as Error).message}\n${queued} of ${ids.length} queued before this; run the same command again to go on`);
          }
          refused.push(id);
          console.log(`${step} ${id} not queued: ${error.message}`);
        }
      }
      console.error(`${queued} of ${ids.length} assets queued for re-indexing${refused.length ? `, ${refused.length} refused` : ""}`);
      if (refused.length) process.exitCode = 1;
    });
}
