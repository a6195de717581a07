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
 * BENCH_INGEST_WARMUP (default 8) other files go through the API (and the bare HTTP server) before the timed phase.
 * `httpFloor`: the same client against a bare node:http server that only streams each body into the blob store,
 * the least any upload route over HTTP can cost here.
 * BENCH_INGEST_CPU_PROFILE=file.cpuprofile profiles the API phase.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
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
  const took: number[] = [];
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < files.length) {
        const index = next++;
        const began = performance.now();
        await run(files[index]!, index);
        took.push(performance.now() - began);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const bytes = files.reduce((sum, file) => sum + file.length, 0);
  // This process's CPU (every thread: libuv's, sharp's), per file; through the API it includes the bench's own client.
  const cpuMsPerFile = (used.user + used.system) / 1000 / files.length;
  took.sort((a, b) => a - b);
  // Each file's own time, start to answer: at `concurrency` files at once, filesPerSec is concurrency / this where
  // waits (round trips, the disk, the scheduler) and not this process's CPU set the pace.
  const p50Ms = took[Math.floor(took.length / 2)] ?? 0;
  return { seconds, filesPerSec: files.length / seconds, mbPerSec: bytes / 1e6 / seconds, cpuMsPerFile, p50Ms };
}

export default async function ingestBench() {
  const count = env("BENCH_INGEST_FILES", 40);
  const size = env("BENCH_INGEST_BYTES", 1_000_000);
  const concurrency = env("BENCH_INGEST_CONCURRENCY", 4);
  // Uploads sent before the timed API phase (other files): the gateway's one-time work (the schema's validation, the
  // key's lookup compiled, connections opened, the JIT) is then not counted as every upload's (section ingest, sixth round).
  const warmUp = env("BENCH_INGEST_WARMUP", 8);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-ingest-"));

  log(`making ${count} JPEGs of ~${size} bytes`);
  const files: Buffer[] = [];
  for (let index = 0; index < count; index++) files.push(await makeJpegOfSize(size, index));
  const warmUpFiles: Buffer[] = [];
  for (let index = 0; index < warmUp; index++) warmUpFiles.push(await makeJpegOfSize(size, count + index));
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

    // What HTTP alone costs on this machine: a bare node:http server that streams each request's body into the blob
    // store and answers its digest as JSON, no multipart, no GraphQL, no key, no row, no job; the same client, kept-alive
    // connections and concurrency. No upload route can be cheaper than this; it bounds what the API can reach.
    const floorStore = new LocalDiskBlobStore(path.join(scratch, "raw-http"));
    const floorServer = http.createServer((request, response) => {
      floorStore.put(request, { maxBytes: config.MAX_UPLOAD_BYTES, keepEnds: 64 * 1024 }).then(
        (blob) => response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ sha256: blob.sha256 })),
        (error: Error) => response.writeHead(500).end(error.message),
      );
    });
    await new Promise<void>((resolve) => floorServer.listen(0, "127.0.0.1", resolve));
    const floorUrl = `http://127.0.0.1:${(floorServer.address() as AddressInfo).port}/`;
    const floorAgent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const putFloor = (file: Buffer) => putBytes(floorUrl, floorAgent, file);
    if (warmUpFiles.length) await timed(warmUpFiles, concurrency, putFloor);
    const floor = await timed(files, concurrency, putFloor);
    floorAgent.destroy();
    await new Promise((resolve) => floorServer.close(resolve));
    log(`bare HTTP into the blob store: ${floor.filesPerSec.toFixed(1)} files/s`);

    // The client writes the multipart body by hand (three writes, the file's bytes as they are) over kept-alive
    // connections: fetch with FormData and a Blob copied and re-chunked each file, which cost this process about
    // as much CPU as the gateway's own work, on the same two cores.
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const upload = async (file: Buffer, index: number) => {
      const result = await postUpload(url, agent, key, MUTATION, { bytes: file, filename: `image-${index}.jpg`, mimeType: "image/jpeg" });
      if (!result.data || result.data.ingest.asset.modality !== "IMAGE") throw new Error(`ingest failed: ${JSON.stringify(result.errors)}`);
    };
    if (warmUpFiles.length) await timed(warmUpFiles, concurrency, upload); // not timed: see warmUp above
    const profiler = process.env.BENCH_INGEST_CPU_PROFILE ? await startCpuProfile() : undefined;
    const sentBefore = { ...sent };
    const api = await timed(files, concurrency, upload);
    agent.destroy();
    // Per upload: BullMQ's and the rate limits' Redis commands, the gateway's statements (no worker runs here).
    const perUpload = { sql: round((sent.sql - sentBefore.sql) / count), redis: round((sent.redis - sentBefore.redis) / count) };
    if (profiler) {
      await profiler.stop(process.env.BENCH_INGEST_CPU_PROFILE!);
      log(`CPU profile of the API phase written to ${process.env.BENCH_INGEST_CPU_PROFILE}`);
    }
    log(`through the API: ${api.filesPerSec.toFixed(1)} files/s`);
    const assets = await app.db.asset.count({ where: { projectId: project.id } });
    if (assets !== count + warmUp) throw new Error(`expected ${count + warmUp} assets, found ${assets}`);

    console.log(
      JSON.stringify({
        bench: "ingest",
        files: count,
        averageBytes,
        concurrency,
        warmUp,
        apiFilesPerSec: round(api.filesPerSec),
        apiMBPerSec: round(api.mbPerSec),
        blobStoreFilesPerSec: round(raw.filesPerSec),
        blobStoreMBPerSec: round(raw.mbPerSec),
        apiToBlobStoreRatio: round(api.filesPerSec / raw.filesPerSec, 3),
        blobStoreStreamedFilesPerSec: round(streamed.filesPerSec),
        httpFloorFilesPerSec: round(floor.filesPerSec),
        httpFloorToBlobStoreRatio: round(floor.filesPerSec / raw.filesPerSec, 3),
        apiToHttpFloorRatio: round(api.filesPerSec / floor.filesPerSec, 3),
        apiToStreamedBlobStoreRatio: round(api.filesPerSec / streamed.filesPerSec, 3),
        cpuMsPerFile: { api: round(api.cpuMsPerFile, 1), blobStore: round(raw.cpuMsPerFile, 1), blobStoreStreamed: round(streamed.cpuMsPerFile, 1), httpFloor: round(floor.cpuMsPerFile, 1) },
        p50MsPerFile: { api: round(api.p50Ms, 1), blobStore: round(raw.p50Ms, 1), httpFloor: round(floor.p50Ms, 1) },
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

/** One PUT of the bytes as they are over a kept-alive `agent`; resolves once the answer is read whole. */
function putBytes(url: string, agent: http.Agent, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: "PUT", agent, headers: { "content-type": "image/jpeg", "content-length": bytes.length } });
    request.on("error", reject);
    request.on("response", (response) => {
      if (response.statusCode !== 200) reject(new Error(`the bare HTTP server answered ${response.statusCode}`));
      response.resume();
      response.on("end", resolve);
      response.on("error", reject);
    });
    request.end(bytes);
  });
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

function round(value: number, digits = 2) {
  return Number(value.toFixed(digits));
}
