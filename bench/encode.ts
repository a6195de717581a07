/**
 * `npm run bench -- encode`: images/s through the whole path (GraphQL upload
 * -> ingest job -> decode -> CLIP image encoder with dynamic batching ->
 * vectors stored in the vector store -> job SUCCEEDED) against the same
 * vision graph run directly on onnxruntime-node with the same batch size,
 * in one run.
 *
 * The model is a CLIP export in the standard layout whose vision tower costs
 * what CLIP ViT-B/32's does (the export models/clip.yaml names): a patch-32
 * Conv at 224 px (0.12 G multiply-adds) and BENCH_ENCODE_LAYERS residual MLP
 * blocks of BENCH_ENCODE_WIDTH (each 768 -> 3072 -> 768 over 49 tokens, 0.23 G);
 * the default 768 x 19 is 4.5 G, ViT-B/32's 4.4 G. It is written on the spot:
 * no real CLIP weights exist offline. BENCH_ENCODE_LAYERS=0 leaves only the
 * path's own cost. BENCH_ENCODE_ITEMS images (default 96),
 * BENCH_ENCODE_CONCURRENCY jobs at once in the worker (default 16), JPEGs of
 * BENCH_ENCODE_SIDE px (default 256). BENCH_ENCODE_REMOTE=1 runs the model on a
 * second worker that serves only model calls (`--queues models`), reached over
 * BullMQ as `--remote-models clip` does: the GPU-worker layout, in one process.
 * MODEL_DEVICE=cuda runs both sides on the GPU when its provider is installed.
 * Needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL).
 *
 * Both sides use the worker's session settings (sessionTuning: threads, no
 * spin-waiting) and the raw side the gateway's mean batch. The raw side is fed
 * the same JPEGs (decoded, resized and normalised there too: `ratio`), and is
 * also timed on one ready tensor (`ratio_model_only`, the model alone). The
 * gateway is warmed up first (BENCH_ENCODE_WARMUP uploads, default 32). The
 * bench waits on BullMQ's queue events, not by polling PostgreSQL, and reports
 * the CPU each image cost (this process and its threads by name, PostgreSQL,
 * Redis), the SQL statements, Redis commands and socket writes it sent (`gateway_sent_per_image`)
 * and the load average; BENCH_ENCODE_CPU_PROFILE=file.cpuprofile
 * profiles the gateway phase's main thread.
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { QueueEvents } from "bullmq";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { createAppContext } from "../services/app/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import { chooseExecutionProvider, sessionTuning } from "../services/models/execution-provider.ts";
import { startWorkerPool } from "../services/worker/worker-pool.ts";
import { writeTinyClipExport } from "../test/support/fixture-models/tiny-clip.ts";
import { postUpload } from "./fixtures/bench-graphql.ts";
import { startCpuProfile } from "./fixtures/cpu-profile.ts";
import { sent } from "./fixtures/sent-commands.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (message: string) => process.stderr.write(`[bench encode] ${message}\n`);
const MUTATION = `mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { id } job { id } } }`;

export default async function encodeBench() {
  const items = env("BENCH_ENCODE_ITEMS", 96);
  const concurrency = env("BENCH_ENCODE_CONCURRENCY", 16);
  const warmUpItems = env("BENCH_ENCODE_WARMUP", 32);
  const vision = { patch: 32, width: env("BENCH_ENCODE_WIDTH", 768), layers: env("BENCH_ENCODE_LAYERS", 19) };
  const side = env("BENCH_ENCODE_SIDE", 256);
  const remote = process.env.BENCH_ENCODE_REMOTE === "1";
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-encode-"));
  const modelsDir = path.join(scratch, "models");
  log(`writing a CLIP export (vision: patch ${vision.patch}, width ${vision.width}, ${vision.layers} blocks) and ${items} images`);
  await writeTinyClipExport(path.join(modelsDir, "clip"), { imageSize: 224, dimensions: 512, vision });
  await fs.mkdir(path.join(scratch, "no-models"));
  // The timed images, one to load the model, then the warm-up round's.
  const images = await Promise.all(Array.from({ length: items + 1 + warmUpItems }, (_, index) => distinctJpeg(index, side)));

  const config = loadConfig({
    ...process.env,
    DATA_DIR: path.join(scratch, "data"),
    // Remote: this side has no CLIP files, so it calls the model on the worker that has them.
    MODELS_DIR: remote ? path.join(scratch, "no-models") : modelsDir,
    QUEUE_PREFIX: `bench-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: "warn",
    REMOTE_MODELS: remote ? "clip" : "",
  });
  await applyMigrations(config.DATABASE_URL);
  const app = await createAppContext(config, createLogger("warn", "bench"));
  // Only the image encoder: OCR and the sentence model would measure other models.
  app.models.configure({ models: ["clip"] });
  // Remote: the model runs in its own worker, taking only model calls; the ingest worker calls it.
  const modelApp = remote ? await createAppContext({ ...config, modelsDir, REMOTE_MODELS: [] }, createLogger("warn", "bench")) : app;
  modelApp.models.configure({ models: ["clip"] });
  const modelWorkers = remote ? startWorkerPool(modelApp, { queues: [], modelCalls: true }) : undefined;
  const gateway = createGateway(app);
  const { port } = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${port}/graphql`;
  const workers = startWorkerPool(app, { queues: ["ingest"], concurrency, modelCalls: !remote });
  const { key, project } = await createApiKey(app.db, `bench-encode-${randomUUID()}`);
  // The client writes the multipart body by hand (three writes, the file's bytes as they are) over kept-alive
  // connections, as the ingest bench does: fetch with FormData and a Blob copy per file cost this process (and so
  // the two cores the model runs on) 4-6 ms per image, which is the bench's work, not the gateway's.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const upload = async (bytes: Buffer, index: number) => {
    const result = await postUpload(url, agent, key, MUTATION, { bytes, filename: `image-${index}.jpg`, mimeType: "image/jpeg" });
    if (!result.data) throw new Error(`ingest failed: ${JSON.stringify(result.errors)}`);
    return result.data.ingest.job.id as string;
  };
  // Waits on BullMQ's event stream for the queue (one Redis stream read for every job), not on PostgreSQL:
  // "completed" comes after the worker wrote the job's row SUCCEEDED, and the rows are checked once at the end.
  const eventsConnection = app.redis.duplicate();
  const queueEvents = new QueueEvents("ingest", { connection: eventsConnection, prefix: config.QUEUE_PREFIX });
  await queueEvents.waitUntilReady();
  const outcomes = new Map<string, string | null>(); // job id -> null (completed) or the failure
  const waiters = new Map<string, (outcome: string | null) => void>();
  const settledWith = (jobId: string, outcome: string | null) => {
    outcomes.set(jobId, outcome);
    waiters.get(jobId)?.(outcome);
  };
  queueEvents.on("completed", ({ jobId }) => settledWith(jobId, null));
  queueEvents.on("failed", ({ jobId, failedReason }) => settledWith(jobId, failedReason || "failed"));
  const settle = async (jobId: string) => {
    const outcome = outcomes.has(jobId) ? outcomes.get(jobId)! : await new Promise<string | null>((resolve) => waiters.set(jobId, resolve));
    if (outcome !== null) throw new Error(`job ${jobId} failed: ${outcome}`);
  };
  const allSucceeded = async (jobIds: string[]) => {
    const rows = await app.db.job.findMany({ where: { id: { in: jobIds } }, select: { status: true } });
    if (rows.length !== jobIds.length || rows.some((row) => row.status !== "SUCCEEDED")) {
      throw new Error(`not every job row reads SUCCEEDED: ${rows.length} rows for ${jobIds.length} jobs`);
    }
  };

  // Uploads images[from..to) from 8 clients at once; the jobs' ids, and a promise that they all succeeded.
  const uploadAll = async (from: number, to: number) => {
    const finished: Promise<void>[] = [];
    const jobIds: string[] = [];
    let next = from;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < to) {
          const index = next++;
          const jobId = await upload(images[index]!, index);
          jobIds.push(jobId);
          finished.push(settle(jobId));
        }
      }),
    );
    return { jobIds, finished: Promise.all(finished) };
  };

  try {
    // Warm-up: the first job loads the model, then a round of uploads at full concurrency, so the gateway phase
    // measures a gateway in service: its JavaScript compiled, its pools and connections open. Without it, the
    // JIT compiling the path's code on V8's threads cost 4-6 ms per image of a 48-image phase.
    const warmUp = await upload(images[items]!, items);
    await settle(warmUp);
    const warmRound = await uploadAll(items + 1, items + 1 + warmUpItems);
    await warmRound.finished;
    await allSucceeded([warmUp, ...warmRound.jobIds]);
    const batchesBefore = modelApp.models.batchSizes("clip", "embedImages").count;
    const busyBefore = modelApp.models.inferenceThreadBusyMs();

    log(`gateway path: ${items} uploads, worker concurrency ${concurrency}`);
    const profiler = process.env.BENCH_ENCODE_CPU_PROFILE ? await startCpuProfile() : undefined;
    const started = performance.now();
    const cpu = cpuMeter();
    const sentBefore = { ...sent, redisByCommand: new Map(sent.redisByCommand) };
    const { jobIds, finished } = await uploadAll(0, items);
    await finished;
    const gatewaySeconds = (performance.now() - started) / 1000;
    // What the phase sent, per image (the gateway's and the worker's together; load-independent).
    const perImage = (count: number) => round(count / items, 2);
    const sentPerImage = {
      sql: perImage(sent.sql - sentBefore.sql),
      redis: perImage(sent.redis - sentBefore.redis),
      redis_writes: perImage(sent.redisWrites - sentBefore.redisWrites),
      by_command: Object.fromEntries(
        [...sent.redisByCommand]
          .map(([name, count]) => [name, perImage(count - (sentBefore.redisByCommand.get(name) ?? 0))] as const)
          .filter(([, count]) => count > 0),
      ),
    };
    // The share of the phase the model computed: below 1, it waited for the path (or for the CPU).
    const modelBusyShare = (modelApp.models.inferenceThreadBusyMs() - busyBefore) / 1000 / gatewaySeconds;
    const cpuMs = cpu.perItem(items);
    if (profiler) {
      await profiler.stop(process.env.BENCH_ENCODE_CPU_PROFILE!);
      log(`CPU profile of the gateway phase written to ${process.env.BENCH_ENCODE_CPU_PROFILE}`);
    }
    await allSucceeded(jobIds);
    const batches = modelApp.models.batchSizes("clip", "embedImages").since(batchesBefore);
    const meanBatch = batches.reduce((a, b) => a + b, 0) / batches.length;
    const stored = await app.vectorStore.count(project.id, { space: "image-text" });
    // One vector per image (chunk 0), the warm-up images included.
    if (stored !== images.length) throw new Error(`expected ${images.length} image-text vectors stored, found ${stored}`);
    const gatewayPerSec = items / gatewaySeconds;
    log(`gateway path: ${gatewayPerSec.toFixed(2)} images/s, mean batch ${meanBatch.toFixed(1)} (${batches.length} batches)`);
    log(`CPU per image on the gateway path: ${JSON.stringify(cpuMs)} ms (postgres and redis-server: every process of that name, other users included)`);
    log(`sent per image on the gateway path: ${JSON.stringify(sentPerImage)} (SQL statements, Redis commands, the socket writes they took)`);

    // Raw engine: the same vision graph on onnxruntime-node, same batch size, same provider.
    const batchSize = Math.max(1, Math.round(meanBatch));
    const execution = chooseExecutionProvider(process.env.MODEL_DEVICE === "cuda" ? "cuda" : undefined, createLogger("warn", "bench"));
    const session = await ort.InferenceSession.create(path.join(modelsDir, "clip", "onnx", "vision_model.onnx"), {
      executionProviders: execution.providers,
      graphOptimizationLevel: "all",
      // The worker's own session settings (threads, no spin-waiting), so both sides run the graph alike.
      ...sessionTuning(Number(process.env.MODEL_THREADS) > 0 ? Math.min(Number(process.env.MODEL_THREADS), os.availableParallelism()) : undefined),
    });
    const rawBatches = Math.ceil(items / batchSize);
    const rawItems = rawBatches * batchSize;
    const timedRaw = async (runBatch: (batch: number) => Promise<unknown>) => {
      await runBatch(rawBatches); // warm-up, on images the timed batches do not use
      const rawStarted = performance.now();
      const rawCpu = process.cpuUsage();
      for (let batch = 0; batch < rawBatches; batch++) await runBatch(batch);
      const perSec = rawItems / ((performance.now() - rawStarted) / 1000);
      const cpuUsed = process.cpuUsage(rawCpu);
      return { perSec, cpuMs: round((cpuUsed.user + cpuUsed.system) / 1000 / rawItems, 1) };
    };
    // The session alone, on one ready tensor: the model's own speed.
    const ready = new ort.Tensor("float32", new Float32Array(batchSize * 3 * 224 * 224).fill(0.1), [batchSize, 3, 224, 224]);
    const modelOnly = await timedRaw(() => session.run({ pixel_values: ready }));
    log(`onnxruntime-node alone, on a ready tensor: ${modelOnly.perSec.toFixed(2)} images/s at batch ${batchSize}`);
    // The session fed the same JPEGs the gateway got, as a program using onnxruntime directly would feed it:
    // each JPEG decoded and resized to 224 px in one sharp pass (the gateway takes two: its decode stage, then
    // the model's resize), normalised into the batch tensor; the next batch is prepared while this one runs.
    const prepared = (batch: number) => preprocessBatch(Array.from({ length: batchSize }, (_, slot) => images[(batch * batchSize + slot) % images.length]!));
    let nextBatch = prepared(rawBatches);
    const fromJpegs = await timedRaw(async (batch) => {
      const data = await nextBatch;
      nextBatch = prepared(batch === rawBatches ? 0 : batch + 1);
      return session.run({ pixel_values: new ort.Tensor("float32", data, [batchSize, 3, 224, 224]) });
    });
    await nextBatch;
    await session.release();
    log(`onnxruntime-node fed the same JPEGs: ${fromJpegs.perSec.toFixed(2)} images/s at batch ${batchSize}`);

    console.log(
      JSON.stringify({
        bench: "encode",
        model: `clip (synthetic vision tower, ${round(multiplyAdds(vision) / 1e9, 2)} G multiply-adds: width ${vision.width}, ${vision.layers} blocks, 224 px)`,
        device: execution.device,
        remote,
        image_side: side,
        items,
        concurrency,
        batchSize,
        warm_up: warmUpItems,
        gateway_per_s: round(gatewayPerSec),
        raw_per_s: round(fromJpegs.perSec),
        ratio: round(gatewayPerSec / fromJpegs.perSec, 3),
        raw_model_only_per_s: round(modelOnly.perSec),
        ratio_model_only: round(gatewayPerSec / modelOnly.perSec, 3),
        model_busy_share: round(modelBusyShare, 3),
        gateway_cpu_ms_per_image: cpuMs,
        gateway_sent_per_image: sentPerImage,
        raw_cpu_ms_per_image: fromJpegs.cpuMs,
        raw_model_only_cpu_ms_per_image: modelOnly.cpuMs,
        loadavg: os.loadavg().map((value) => round(value)),
      }),
    );
  } finally {
    agent.destroy();
    await queueEvents.close();
    eventsConnection.disconnect(); // given to QueueEvents, so not closed by it
    await workers.close();
    await modelWorkers?.close();
    if (remote) await modelApp.close();
    await app.db.project.delete({ where: { id: project.id } }).catch(() => {});
    await app.queues.queue("ingest").obliterate({ force: true }).catch(() => {});
    await gateway.close();
    await app.close();
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/**
 * CPU time spent while the gateway phase ran, per image: this process (gateway,
 * worker and model together), and PostgreSQL and Redis from /proc (each server
 * process alive at the end of the phase: other users' work on the same servers
 * is counted too, connections that ended meanwhile are not).
 */
function cpuMeter() {
  const ticksPerSecond = 100; // USER_HZ on Linux
  // Per process, so that a server process which ends meanwhile (another user's connection) cannot make it negative.
  const serverTicks = () => {
    const ticks = new Map<string, { server: "postgres" | "redis"; ticks: number }>();
    let pids: string[];
    try {
      pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
    } catch {
      return undefined;
    }
    for (const pid of pids) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const server = comm.startsWith("postgres") ? "postgres" : comm.startsWith("redis-server") ? "redis" : undefined;
        if (server) ticks.set(pid, { server, ticks: Number(fields[11]) + Number(fields[12]) }); // utime + stime
      } catch {
        // the process ended meanwhile
      }
    }
    return ticks;
  };
  const serverMs = (
    before: NonNullable<ReturnType<typeof serverTicks>>,
    after: NonNullable<ReturnType<typeof serverTicks>>,
    perItem: (ms: number) => number,
  ) => {
    const totals = { postgres: 0, redis: 0 };
    // A server process that started meanwhile (the pool opening connections under load) counts whole.
    for (const [pid, { server, ticks }] of after) totals[server] += ticks - (before.get(pid)?.ticks ?? 0);
    return { postgres: perItem((totals.postgres * 1000) / ticksPerSecond), redis: perItem((totals.redis * 1000) / ticksPerSecond) };
  };
  // This process's threads by name (the main thread, libuv's pool where sharp and file I/O run, the inference
  // thread and onnxruntime's pool, LanceDB's runtime...): where the process's CPU went.
  const threadTicks = () => {
    const ticks = new Map<string, { name: string; ticks: number }>();
    try {
      for (const tid of readdirSync("/proc/self/task")) {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        ticks.set(tid, { name: tid === String(process.pid) ? "main" : name, ticks: Number(fields[11]) + Number(fields[12]) });
      }
    } catch {
      // no /proc (not Linux), or a thread ended while read
    }
    return ticks;
  };
  const processBefore = process.cpuUsage();
  const serversBefore = serverTicks();
  const threadsBefore = threadTicks();
  return {
    perItem(items: number) {
      const used = process.cpuUsage(processBefore);
      const servers = serverTicks();
      const perItem = (ms: number) => round(ms / items, 1);
      const byName = new Map<string, number>();
      for (const [tid, { name, ticks }] of threadTicks()) byName.set(name, (byName.get(name) ?? 0) + ticks - (threadsBefore.get(tid)?.ticks ?? 0));
      const threads = Object.fromEntries(
        [...byName].filter(([, ticks]) => ticks > 0).sort((a, b) => b[1] - a[1]).map(([name, ticks]) => [name, perItem((ticks * 1000) / ticksPerSecond)]),
      );
      return {
        process: perItem((used.user + used.system) / 1000),
        ...(serversBefore && servers ? serverMs(serversBefore, servers, perItem) : {}),
        threads,
      };
    },
  };
}

/** The tower's multiply-adds per image: the patch Conv, then each block's two matrices over the 7 x 7 patches. */
function multiplyAdds({ patch, width, layers }: { patch: number; width: number; layers: number }) {
  const tokens = (224 / patch) ** 2;
  return 3 * patch * patch * width * tokens + layers * 2 * width * 4 * width * tokens;
}

/**
 * A square JPEG of smooth random colour (16 x 16 seeded cells, enlarged), different for every index:
 * identical bytes would be one asset, and the bench would count one job twice.
 */
async function distinctJpeg(index: number, side: number): Promise<Buffer> {
  let seed = (index + 1) * 2654435761;
  const random = () => {
    seed = (seed ^ (seed << 13)) >>> 0;
    seed = (seed ^ (seed >>> 17)) >>> 0;
    seed = (seed ^ (seed << 5)) >>> 0;
    return seed & 255;
  };
  const cells = Buffer.alloc(16 * 16 * 3);
  for (let i = 0; i < cells.length; i++) cells[i] = random();
  return sharp(cells, { raw: { width: 16, height: 16, channels: 3 } }).resize(side, side, { kernel: "cubic" }).jpeg({ quality: 80 }).toBuffer();
}

/** CLIP's normalisation (its preprocessor_config.json), as the export's own config gives it. */
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * The raw side's preprocessing: JPEGs -> one float32 NCHW batch at 224 px, shortest edge then centre crop, each
 * decoded and resized in one sharp pass, then (value / 255 - mean) / std per channel.
 */
async function preprocessBatch(jpegs: Buffer[]): Promise<Float32Array> {
  const plane = 224 * 224;
  const out = new Float32Array(jpegs.length * 3 * plane);
  await Promise.all(
    jpegs.map(async (jpeg, index) => {
      const pixels = await sharp(jpeg).resize(224, 224, { fit: "cover", position: "centre", kernel: "cubic" }).removeAlpha().raw().toBuffer();
      const base = index * 3 * plane;
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) out[base + c * plane + p] = (pixels[p * 3 + c]! / 255 - CLIP_MEAN[c]!) / CLIP_STD[c]!;
      }
    }),
  );
  return out;
}

function round(value: number, digits = 2) {
  return Number(value.toFixed(digits));
}
