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
 *
 * BENCH_INGEST_TOPOLOGY: `single` (the client, the gateway and the bare HTTP server on this process's one event loop,
 * the figures of rounds one to six), `processes` (the deployment's shape: the gateway started as `npm run gateway`
 * starts it, the bare HTTP server likewise in a process of its own, this process only the client;
 * bench/fixtures/deployment-processes.ts), or `both` (the default: `single`'s fields as before, then `processes`, so
 * both shapes are read in one window against the same blob-store figure). The blob store is measured here, in this
 * process, in every mode. With a profile asked for, `processes` writes `<file>-gateway.cpuprofile` and
 * `<file>-floor.cpuprofile`. BENCH_INGEST_PROCESS_WARMUP (default 100): the uploads sent to each child before its
 * timed phase (a child starts cold: after 8 the gateway spent 8.2-8.7 ms of CPU an upload, after 100 5.4-5.8 ms).
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
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
import { startDeploymentProcesses, startProbedProcess } from "./fixtures/deployment-processes.ts";
import { putBytes, startHttpFloor } from "./fixtures/http-floor.ts";
import type { ProbeReading } from "./fixtures/process-probe.ts";
import { sent } from "./fixtures/sent-commands.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (message: string) => process.stderr.write(`[bench ingest] ${message}\n`);

const TOPOLOGY = process.env.BENCH_INGEST_TOPOLOGY ?? "both";
if (!["single", "processes", "both"].includes(TOPOLOGY)) throw new Error(`BENCH_INGEST_TOPOLOGY must be single, processes or both; got ${TOPOLOGY}`);

const MUTATION = `mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { id modality } job { id } } }`;

type Timed = Awaited<ReturnType<typeof timed>>;

async function timed(files: Buffer[], concurrency: number, run: (file: Buffer, index: number) => Promise<void>) {
  let next = 0;
  const took: number[] = [];
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
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
  const eventLoopBusy = performance.eventLoopUtilization(elu).utilization;
  const bytes = files.reduce((sum, file) => sum + file.length, 0);
  // This process's CPU (every thread: libuv's, sharp's), per file; through the API it includes the bench's own client.
  const cpuMsPerFile = (used.user + used.system) / 1000 / files.length;
  took.sort((a, b) => a - b);
  // Each file's own time, start to answer: at `concurrency` files at once, filesPerSec is concurrency / this where
  // waits (round trips, the disk, the scheduler) and not this process's CPU set the pace.
  const p50Ms = took[Math.floor(took.length / 2)] ?? 0;
  return { seconds, filesPerSec: files.length / seconds, mbPerSec: bytes / 1e6 / seconds, cpuMsPerFile, p50Ms, eventLoopBusy };
}

type Shape = { files: Buffer[]; warmUpFiles: Buffer[]; concurrency: number; maxUploadBytes: number; scratch: string; raw: Timed; streamed: Timed };

export default async function ingestBench() {
  const count = env("BENCH_INGEST_FILES", 40);
  const size = env("BENCH_INGEST_BYTES", 1_000_000);
  const concurrency = env("BENCH_INGEST_CONCURRENCY", 4);
  // Uploads sent before the timed API phase (other files): the gateway's one-time work (the schema's validation, the
  // key's lookup compiled, connections opened, the JIT) is then not counted as every upload's (section ingest, sixth round).
  const warmUp = env("BENCH_INGEST_WARMUP", 8);
  const processWarmUp = env("BENCH_INGEST_PROCESS_WARMUP", 100);
  const maxUploadBytes = Math.max(size * 4, 8 * 1024 * 1024);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-ingest-"));

  try {
    log(`making ${count} JPEGs of ~${size} bytes`);
    const files: Buffer[] = [];
    for (let index = 0; index < count; index++) files.push(await makeJpegOfSize(size, index));
    // Warm-up files are other files than the timed ones (the same content twice is one asset); each shape has its own project.
    const warmUpFiles: Buffer[] = [];
    for (let index = 0; index < warmUp; index++) warmUpFiles.push(await makeJpegOfSize(size, count + index));
    // A child starts cold, so it gets more (BENCH_INGEST_PROCESS_WARMUP): the same JPEGs, each made distinct by a comment.
    const processWarmUpFiles = Array.from({ length: processWarmUp }, (_, index) => withComment((warmUpFiles.length ? warmUpFiles : files)[index % (warmUpFiles.length || count)]!, `warm-up ${index}`));
    const averageBytes = Math.round(files.reduce((sum, file) => sum + file.length, 0) / count);

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

    const shape: Shape = { files, warmUpFiles, concurrency, maxUploadBytes, scratch, raw, streamed };
    const single = TOPOLOGY === "processes" ? undefined : await singleProcessShape(shape);
    const processes = TOPOLOGY === "single" ? undefined : await deploymentShape({ ...shape, warmUpFiles: processWarmUpFiles });
    // The store once more, after the shapes (a third directory): how far the disk's pace moved over the run.
    const againStore = new LocalDiskBlobStore(path.join(scratch, "raw-again"));
    const again = await timed(files, concurrency, async (file) => {
      await againStore.put(file);
    });

    console.log(
      JSON.stringify({
        bench: "ingest",
        topology: TOPOLOGY,
        files: count,
        averageBytes,
        concurrency,
        warmUp,
        ...(single ? { apiFilesPerSec: single.apiFilesPerSec, apiMBPerSec: single.apiMBPerSec } : {}),
        blobStoreFilesPerSec: round(raw.filesPerSec),
        blobStoreMBPerSec: round(raw.mbPerSec),
        ...(single ? { apiToBlobStoreRatio: single.apiToBlobStoreRatio } : {}),
        blobStoreStreamedFilesPerSec: round(streamed.filesPerSec),
        ...(single
          ? {
              httpFloorFilesPerSec: single.httpFloorFilesPerSec,
              httpFloorToBlobStoreRatio: single.httpFloorToBlobStoreRatio,
              apiToHttpFloorRatio: single.apiToHttpFloorRatio,
              apiToStreamedBlobStoreRatio: single.apiToStreamedBlobStoreRatio,
            }
          : {}),
        cpuMsPerFile: { ...single?.cpuMsPerFile, blobStore: round(raw.cpuMsPerFile, 1), blobStoreStreamed: round(streamed.cpuMsPerFile, 1) },
        ...(single ? { p50MsPerFile: single.p50MsPerFile, sentPerUpload: single.sentPerUpload } : {}),
        ...(processes ? { processes } : {}),
        blobStoreAfterFilesPerSec: round(again.filesPerSec),
        // The same ratios against the store measured last, warm: the first store phase is the process's first writes
        // (its JIT, the fan-out folders made), and moved 177-929 files/s across runs where this one mostly gave 640-1205.
        ratiosToBlobStoreAfter: {
          ...(single ? { api: round(single.apiFilesPerSec / again.filesPerSec, 3), httpFloor: round(single.httpFloorFilesPerSec / again.filesPerSec, 3) } : {}),
          ...(processes
            ? { processesApi: round(processes.apiFilesPerSec / again.filesPerSec, 3), processesHttpFloor: round(processes.httpFloorFilesPerSec / again.filesPerSec, 3) }
            : {}),
        },
        loadavg: os.loadavg().map((load) => round(load)),
      }),
    );
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Rounds one to six: the client, the gateway (an app context and `createGateway` here) and the bare HTTP server all
 * on this process's event loop.
 */
async function singleProcessShape({ files, warmUpFiles, concurrency, maxUploadBytes, scratch, raw, streamed }: Shape) {
  const count = files.length;
  const config = loadConfig({
    ...process.env,
    DATA_DIR: path.join(scratch, "api"),
    QUEUE_PREFIX: `bench-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: "warn",
    MAX_UPLOAD_BYTES: String(maxUploadBytes),
  });
  await applyMigrations(config.DATABASE_URL);
  const app = await createAppContext(config, createLogger("warn", "bench"));
  const gateway = createGateway(app);
  const { port } = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${port}/graphql`;
  const { key, project } = await createApiKey(app.db, `bench-ingest-${randomUUID()}`);

  try {
    // What HTTP alone costs on this machine (bench/fixtures/http-floor.ts): the same client, kept-alive connections
    // and concurrency. No upload route can be cheaper than this; it bounds what the API can reach.
    const floorServer = await startHttpFloor(path.join(scratch, "raw-http"), config.MAX_UPLOAD_BYTES);
    const floorAgent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const putFloor = (file: Buffer) => putBytes(floorServer.url, floorAgent, file);
    if (warmUpFiles.length) await timed(warmUpFiles, concurrency, putFloor);
    const floor = await timed(files, concurrency, putFloor);
    floorAgent.destroy();
    await floorServer.close();
    log(`bare HTTP into the blob store: ${floor.filesPerSec.toFixed(1)} files/s`);

    // The client writes the multipart body by hand (three writes, the file's bytes as they are) over kept-alive
    // connections: fetch with FormData and a Blob copied and re-chunked each file, which cost this process about
    // as much CPU as the gateway's own work, on the same two cores.
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const upload = uploader(url, agent, key);
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
    if (assets !== count + warmUpFiles.length) throw new Error(`expected ${count + warmUpFiles.length} assets, found ${assets}`);

    return {
      ...rates({ api, floor, raw, streamed }),
      apiMBPerSec: round(api.mbPerSec),
      cpuMsPerFile: { api: round(api.cpuMsPerFile, 1), httpFloor: round(floor.cpuMsPerFile, 1) },
      p50MsPerFile: { api: round(api.p50Ms, 1), blobStore: round(raw.p50Ms, 1), httpFloor: round(floor.p50Ms, 1) },
      sentPerUpload: perUpload,
    };
  } finally {
    await app.db.project.delete({ where: { id: project.id } }).catch(() => {});
    await app.queues.queue("ingest").obliterate({ force: true }).catch(() => {});
    await gateway.close();
    await app.close();
  }
}

/**
 * The deployment's shape: the gateway in a process of its own (`npm run gateway`'s entry, the test database and
 * Redis, no worker), the bare HTTP server in another, this process only the client, the same client as above. CPU is
 * read per process (the probe preloaded in each child, `process.cpuUsage` here), per file.
 */
async function deploymentShape({ files, warmUpFiles, concurrency, maxUploadBytes, scratch, raw, streamed }: Shape) {
  const count = files.length;
  const profileFile = process.env.BENCH_INGEST_CPU_PROFILE?.replace(/\.cpuprofile$/, "");
  const started = await Promise.allSettled([
    startProbedProcess("floor", "http-floor-process.ts", { BENCH_FLOOR_DIR: path.join(scratch, "processes-http"), BENCH_FLOOR_MAX_BYTES: String(maxUploadBytes) }),
    startDeploymentProcesses({ processes: ["gateway"], env: { MAX_UPLOAD_BYTES: String(maxUploadBytes) } }),
  ]);
  const [floorProcess, gatewayProcesses] = started.map((result) => (result.status === "fulfilled" ? result.value : undefined)) as [
    Awaited<ReturnType<typeof startProbedProcess>> | undefined,
    Awaited<ReturnType<typeof startDeploymentProcesses<"gateway">>> | undefined,
  ];
  let projectId: string | undefined;
  try {
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    const floorChild = floorProcess!;
    const gatewayChild = gatewayProcesses!;
    log(`processes: gateway pid ${gatewayChild.pids.gateway}, bare HTTP pid ${floorChild.pid}`);

    const floorAgent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const putFloor = (file: Buffer) => putBytes(floorChild.url, floorAgent, file);
    if (warmUpFiles.length) await timed(warmUpFiles, concurrency, putFloor);
    if (profileFile) await floorChild.startProfile();
    await floorChild.mark();
    const floor = await timed(files, concurrency, putFloor);
    const floorSpent = await floorChild.read();
    if (profileFile) await floorChild.stopProfile(`${profileFile}-floor.cpuprofile`);
    floorAgent.destroy();
    await floorChild.close();
    log(`processes: bare HTTP into the blob store: ${floor.filesPerSec.toFixed(1)} files/s`);

    const project = await gatewayChild.createProject(`bench-ingest-processes-${randomUUID()}`);
    projectId = project.projectId;
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const upload = uploader(gatewayChild.graphqlUrl, agent, project.key);
    if (warmUpFiles.length) await timed(warmUpFiles, concurrency, upload);
    if (profileFile) await gatewayChild.startProfiles();
    await gatewayChild.mark();
    const api = await timed(files, concurrency, upload);
    const { gateway: gatewaySpent } = await gatewayChild.read();
    if (profileFile) await gatewayChild.stopProfiles(profileFile);
    agent.destroy();
    log(`processes: through the API: ${api.filesPerSec.toFixed(1)} files/s`);

    const perFile = (reading: ProbeReading) => round(reading.cpuMs / count, 1);
    return {
      warmUp: warmUpFiles.length,
      ...rates({ api, floor, raw, streamed }),
      // Per file: the server process's CPU (all its threads) and the client's (this process), and their sum.
      cpuMsPerFile: {
        api: { gateway: perFile(gatewaySpent), client: round(api.cpuMsPerFile, 1), total: round(gatewaySpent.cpuMs / count + api.cpuMsPerFile, 1) },
        httpFloor: { floor: perFile(floorSpent), client: round(floor.cpuMsPerFile, 1), total: round(floorSpent.cpuMs / count + floor.cpuMsPerFile, 1) },
      },
      eventLoopBusy: {
        api: { gateway: round(gatewaySpent.eventLoopBusy, 3), client: round(api.eventLoopBusy, 3) },
        httpFloor: { floor: round(floorSpent.eventLoopBusy, 3), client: round(floor.eventLoopBusy, 3) },
      },
      p50MsPerFile: { api: round(api.p50Ms, 1), httpFloor: round(floor.p50Ms, 1) },
      // The gateway's own statements and commands (no worker runs: the enqueue is BullMQ's add).
      sentPerUpload: {
        sql: round(gatewaySpent.sql / count),
        redis: round(gatewaySpent.redis / count),
        redisByCommand: Object.fromEntries(Object.entries(gatewaySpent.redisByCommand).map(([name, n]) => [name, round(n / count)])),
      },
    };
  } finally {
    if (projectId) await gatewayProcesses?.deleteProject(projectId).catch(() => {});
    await floorProcess?.close();
    await gatewayProcesses?.close();
  }
}

/** One multipart upload through the API, checked: the asset is an image. */
function uploader(url: string, agent: http.Agent, key: string) {
  return async (file: Buffer, index: number) => {
    const result = await postUpload(url, agent, key, MUTATION, { bytes: file, filename: `image-${index}.jpg`, mimeType: "image/jpeg" });
    if (!result.data || result.data.ingest.asset.modality !== "IMAGE") throw new Error(`ingest failed: ${JSON.stringify(result.errors)}`);
  };
}

/** The JPEG with a comment segment (COM) after its start marker: the same image, other bytes, another asset. */
function withComment(jpeg: Buffer, text: string): Buffer {
  const comment = Buffer.from(text, "latin1");
  const header = Buffer.from([0xff, 0xfe, (comment.length + 2) >> 8, (comment.length + 2) & 0xff]);
  return Buffer.concat([jpeg.subarray(0, 2), header, comment, jpeg.subarray(2)]);
}

function chunksOf(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

/** Files/s through the API and the bare-HTTP floor, and their ratios to the blob store (written whole, and streamed): alike in both shapes. */
function rates({ api, floor, raw, streamed }: { api: Timed; floor: Timed; raw: Timed; streamed: Timed }) {
  return {
    apiFilesPerSec: round(api.filesPerSec),
    apiToBlobStoreRatio: round(api.filesPerSec / raw.filesPerSec, 3),
    httpFloorFilesPerSec: round(floor.filesPerSec),
    httpFloorToBlobStoreRatio: round(floor.filesPerSec / raw.filesPerSec, 3),
    apiToHttpFloorRatio: round(api.filesPerSec / floor.filesPerSec, 3),
    apiToStreamedBlobStoreRatio: round(api.filesPerSec / streamed.filesPerSec, 3),
  };
}

function round(value: number, digits = 2) {
  return Number(value.toFixed(digits));
}
