import { openAsBlob } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { IngestDocument, JobEventsDocument } from "../../../packages/client/index.ts";
import { gateway, GatewayUnreachableError } from "../gateway-client.ts";
const FINISHED = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

type Job = { id: string; status: string; progress?: number; error?: { code: string; message: string } | null };
type Ingested = { asset: { id: string; modality: string; mimeType: string; byteSize: number }; job: Job };
type IngestOptions = { metadata?: string; tag?: string[]; concurrency: string; wait?: boolean; json?: boolean };

const collect = (value: string, previous: string[] = []) => [...previous, value];
const isUrl = (source: string) => /^https?:\/\//i.test(source);

export function registerIngestCommands(program: Command) {
  program
    .command("ingest")
    .description("ingest files, folders (recursively) and http(s) URLs through the gateway (TESSERA_URL, TESSERA_API_KEY)")
    .argument("<sources...>", "paths or URLs")
    .option("--metadata <json>", "a JSON object stored with every asset")
    .option("--tag <tag>", "a tag for every asset; repeatable", collect)
    .option("--concurrency <n>", "uploads at once", "4")
    .option("--wait", "wait until each ingest job has finished")
    .option("--json", "print one JSON object per source")
    .action(async (sources: string[], options: IngestOptions) => {
      const metadata = options.metadata ? parseMetadata(options.metadata) : undefined;
      const items = await expandSources(sources);
      const bar = new cliProgress.SingleBar(
        { format: "ingest [{bar}] {value}/{total} | {failed} failed | {source}", stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(items.length, 0, { failed: 0, source: "" });
      let failed = 0;
      // Each line with where it goes: successes to stdout, failures and unconfirmed files to stderr.
      const lines: Array<{ text: string; failed: boolean }> = [];
      // Once the gateway went away, what is left is not tried: each would only wait for the same refusal.
      let gone: GatewayUnreachableError | undefined;
      const unconfirmed: string[] = [];
      await forEachLimited(items, Math.max(1, Number(options.concurrency) || 1), async (source) => {
        if (gone) {
          unconfirmed.push(source);
          bar.increment(1, { failed, source: path.basename(source) });
          return;
        }
        try {
          const result = await ingestOne(source, { metadata, tags: options.tag });
          const job = options.wait ? await waitForJob(result.job.id) : result.job;
          if (job.status === "FAILED") throw new Error(`the ingest job failed: ${job.error?.code ?? "ERROR"}: ${job.error?.message ?? "no reason given"}`);
          lines.push({
            text: options.json
              ? JSON.stringify({ source, ...result, job })
              : `${result.asset.id}\t${result.asset.modality}\t${result.asset.mimeType}\t${job.status}\t${source}`,
            failed: false,
          });
        } catch (error) {
          if (error instanceof GatewayUnreachableError) {
            // Not this file's fault, and its fate is unknown: it may be stored, and its job may still finish.
            gone ??= error;
            unconfirmed.push(source);
          } else {
            failed++;
            lines.push({ text: options.json ? JSON.stringify({ source, error: (error as Error).message }) : `error\t${source}\t${(error as Error).message}`, failed: true });
          }
        }
        bar.increment(1, { failed, source: path.basename(source) });
      });
      bar.stop();
      for (const source of unconfirmed) {
        lines.push({ text: options.json ? JSON.stringify({ source, unconfirmed: true, error: gone!.message }) : `unconfirmed\t${source}`, failed: true });
      }
      // Results after the bar, so they are not mixed into its redraws; errors go to stderr (a waited job's "error": null is no error).
      for (const line of lines) (line.failed ? console.error : console.log)(line.text);
      if (failed > 0) {
        console.error(`${failed} of ${items.length} failed`);
        process.exitCode = 1;
      }
      if (gone) {
        console.error(`the gateway went away: ${gone.message}`);
        console.error(
          `${unconfirmed.length} of ${items.length} ${unconfirmed.length === 1 ? "file was" : "files were"} not confirmed: run the same command again; ` +
            "files already ingested are recognised by their content and not stored twice",
        );
        process.exitCode = 75; // EX_TEMPFAIL: try again later
      }
    });
}

function ingestOne(source: string, extra: { metadata?: Record<string, unknown>; tags?: string[] }): Promise<Ingested> {
  const input = { ...(extra.metadata ? { metadata: extra.metadata } : {}), ...(extra.tags ? { tags: extra.tags } : {}) };
  if (isUrl(source)) return gateway().request(IngestDocument, { input: { ...input, url: source } }).then((data) => data.ingest);
  return openAsBlob(source)
    .then((blob) =>
      gateway().request(IngestDocument, { input: { ...input, file: null } }, { files: [{ path: "variables.input.file", blob, name: path.basename(source) }] }),
    )
    .then((data) => data.ingest);
}

/**
 * Follows the job's events until it finishes. jobEvents sends the job's
 * state first and ends after a final one, so a job that finished before we
 * subscribed still ends the wait at once.
 */
async function waitForJob(id: string): Promise<Job> {
  for await (const { jobEvents: event } of gateway().subscribe(JobEventsDocument, { id })) {
    if (FINISHED.has(event.status)) return { id: event.jobId, status: event.status, progress: event.progress, error: event.error };
  }
  throw new GatewayUnreachableError(`the gateway ended the events of job ${id} before the job finished`, "the event stream ended");
}

/** Folders become the files under them (hidden ones skipped), in a stable order. */
async function expandSources(sources: string[]): Promise<string[]> {
  const items: string[] = [];
  for (const source of sources) {
    if (isUrl(source)) {
      items.push(source);
      continue;
    }
    const stat = await fs.stat(source).catch(() => {
      throw new Error(`no such file or folder: ${source}`);
    });
    if (!stat.isDirectory()) {
      items.push(source);
      continue;
    }
    const entries = await fs.readdir(source, { recursive: true, withFileTypes: true });
    items.push(
      ...entries
        .filter((entry) => entry.isFile() && !path.relative(source, path.join(entry.parentPath, entry.name)).split(path.sep).some((part) => part.startsWith(".")))
        .map((entry) => path.join(entry.parentPath, entry.name))
        .sort(),
    );
  }
  return items;
}

async function forEachLimited<T>(items: T[], limit: number, run: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function parseMetadata(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("--metadata must be JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("--metadata must be a JSON object");
  return value as Record<string, unknown>;
}
