/**
 * `npm run bench -- ingest`: files/s for ~1 MB images through the API (a
 * GraphQL multipart upload: streamed into the blob store, type sniffed, image
 * validated by sharp, Asset and Job rows written, ingest job enqueued) against
 * writing the same files straight to the blob store, in one run. The blob store is also fed the same bytes as a
 * stream of 64 KB chunks (`blobStoreStreamed`), as an upload hands them over from the socket.
 *
 * BENCH_INGEST_FILES (default 40) distinct JPEGs of BENCH_INGEST_BYTES
 * (default 1000000), BENCH_INGEST_CONCURRENCY requests at once (default 4).
 * Needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL); no worker runs, so
 * the figure is what the gateway accepts, not what the encoders finish.
 * BENCH_INGEST_CPU_PROFILE=file.cpuprofile profiles the API phase.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { LocalDiskBlobStore } from "../services/assets/blob-store.ts";
import { createAppContext } from "../services/app/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import { makeJpegOfSize } from "../test/support/media-fixtures.ts";
import { postUpload } from "./fixtures/bench-graphql.ts";
import { startCpuProfile } from "./fixtures/cpu-profile.ts";
import { sent } from "./fixtures/sent-commands.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (message: string) => process.stderr.write(`[bench ingest] ${message}\n`);

const MUTATION = `mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { id modality } job { id } } }`;

async function timed(files: Buffer[], concurrency: number, run: (file: Buffer, index: number) => Promise<void>) {
  let next = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < files.length) {
        const index = next++;
        await run(files[index]!, index);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const bytes = files.reduce((sum, file) => sum + file.length, 0);
  // This process's CPU (every thread: libuv's, sharp's), per file; through the API it includes the bench's own client.
  const cpuMsPerFile = (used.user + used.system) / 1000 / files.length;
  return { seconds, filesPerSec: files.length / seconds, mbPerSec: bytes / 1e6 / seconds, cpuMsPerFile };
}

export default async function ingestBench() {
  const count = env("BENCH_INGEST_FILES", 40);
  const size = env("BENCH_INGEST_BYTES", 1_000_000);
  const concurrency = env("BENCH_INGEST_CONCURRENCY", 4);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-ingest-"));

  log(`making ${count} JPEGs of ~${size} bytes`);
  const files: Buffer[] = [];
  for (let index = 0; index < count; index++) files.push(await makeJpegOfSize(size, index));
  const averageBytes = Math.round(files.reduce((sum, file) => sum + file.length, 0) / count);

  const config = loadConfig({
    ...process.env,
    DATA_DIR: path.join(scratch, "api"),
    QUEUE_PREFIX: `bench-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: "warn",
    MAX_UPLOAD_BYTES: String(Math.max(size * 4, 8 * 1024 * 1024)),
  });
  await applyMigrations(config.DATABASE_URL);
  const app = await createAppContext(config, createLogger("warn", "bench"));
  const gateway = createGateway(app);
  const { port } = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${port}/graphql`;
  const { key, project } = await createApiKey(app.db, `bench-ingest-${randomUUID()}`);

  try {
    // Raw engine: the blob store alone, same bytes, same concurrency.
    const rawStore = new LocalDiskBlobStore(path.join(scratch, "raw"));
    const raw = await timed(files, concurrency, async (file) => {
      await rawStore.put(file);
    });
    log(`blob store alone: ${raw.filesPerSec.toFixed(1)} files/s`);
    // The same bytes as a stream of socket-sized chunks, as an upload reaches the blob store (another directory: a fresh write each).
    const streamedStore = new LocalDiskBlobStore(path.join(scratch, "raw-streamed"));
    const streamed = await timed(files, concurrency, async (file) => {
      await streamedStore.put(Readable.from(chunksOf(file, 64 * 1024)));
    });
    log(`blob store alone, streamed: ${streamed.filesPerSec.toFixed(1)} files/s`);

    const profiler = process.env.BENCH_INGEST_CPU_PROFILE ? await startCpuProfile() : undefined;
    // The client writes the multipart body by hand (three writes, the file's bytes as they are) over kept-alive
    // connections: fetch with FormData and a Blob copied and re-chunked each file, which cost this process about
    // as much CPU as the gateway's own work, on the same two cores.
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const sentBefore = { ...sent };
    const api = await timed(files, concurrency, async (file, index) => {
      const result = await postUpload(url, agent, key, MUTATION, { bytes: file, filename: `image-${index}.jpg`, mimeType: "image/jpeg" });
      if (!result.data || result.data.ingest.asset.modality !== "IMAGE") throw new Error(`ingest failed: ${JSON.stringify(result.errors)}`);
    });
    agent.destroy();
    // Per upload: BullMQ's and the rate limits' Redis commands, the gateway's statements (no worker runs here).
    const perUpload = { sql: round((sent.sql - sentBefore.sql) / count), redis: round((sent.redis - sentBefore.redis) / count) };
    if (profiler) {
      await profiler.stop(process.env.BENCH_INGEST_CPU_PROFILE!);
      log(`CPU profile of the API phase written to ${process.env.BENCH_INGEST_CPU_PROFILE}`);
    }
    log(`through the API: ${api.filesPerSec.toFixed(1)} files/s`);
    const assets = await app.db.asset.count({ where: { projectId: project.id } });
    if (assets !== count) throw new Error(`expected ${count} assets, found ${assets}`);

    console.log(
      JSON.stringify({
        bench: "ingest",
        files: count,
        averageBytes,
        concurrency,
        apiFilesPerSec: round(api.filesPerSec),
        apiMBPerSec: round(api.mbPerSec),
        blobStoreFilesPerSec: round(raw.filesPerSec),
        blobStoreMBPerSec: round(raw.mbPerSec),
        apiToBlobStoreRatio: round(api.filesPerSec / raw.filesPerSec, 3),
        blobStoreStreamedFilesPerSec: round(streamed.filesPerSec),
        apiToStreamedBlobStoreRatio: round(api.filesPerSec / streamed.filesPerSec, 3),
        cpuMsPerFile: { api: round(api.cpuMsPerFile, 1), blobStore: round(raw.cpuMsPerFile, 1), blobStoreStreamed: round(streamed.cpuMsPerFile, 1) },
        sentPerUpload: perUpload,
        loadavg: os.loadavg().map((load) => round(load)),
      }),
    );
  } finally {
    await app.db.project.delete({ where: { id: project.id } }).catch(() => {});
    await app.queues.queue("ingest").obliterate({ force: true }).catch(() => {});
    await gateway.close();
    await app.close();
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

function round(value: number, digits = 2) {
  return Number(value.toFixed(digits));
}
