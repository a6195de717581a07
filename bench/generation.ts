/**
 * `npm run bench -- generation`: what the generation layer costs over the
 * engines underneath, in one run.
 *
 *  - chat: ModelRouter (aliases, retries, timeouts, usage) vs the raw `openai`
 *    SDK, both streaming from the same local OpenAI-protocol server
 *  - generate job: the `generate` mutation end to end (GraphQL, PostgreSQL,
 *    BullMQ, worker, Job row) vs a direct router call
 *  - local: the transformers provider vs the raw transformers.js pipeline (tiny GPT-2 style export)
 *  - speech: the espeak provider vs spawning espeak-ng directly
 *
 * Sizes: BENCH_REQUESTS (default 200), BENCH_CONCURRENCY (8), BENCH_TOKENS (64 per reply), BENCH_JOBS (40),
 * BENCH_JOB_WARMUP (40 jobs at BENCH_CONCURRENCY before the timed ones; in the processes topology as many direct calls too).
 * BENCH_GENERATION_JOBS_ONLY=1 skips the local and speech comparisons (chat stays: the job is read against it);
 * BENCH_GENERATION_CPU_PROFILE=file.cpuprofile profiles this process over the timed generate-job phase and the stack floor's (file-floor.cpuprofile; with the
 * processes topology, also each child: file-gateway.cpuprofile, file-worker.cpuprofile, file-model.cpuprofile, and the
 * floor's: file-floor-client.cpuprofile, file-floor-gateway.cpuprofile, file-floor-worker.cpuprofile).
 *
 * BENCH_GENERATION_TOPOLOGY: `single` (client, gateway, worker and fake model server on this process's one event
 * loop, as every figure before issue #20's seventh round), `processes` (the job against a direct call in the
 * deployment's shape: bench/fixtures/deployment-processes.ts) or `both` (the default: the single-process fields as
 * before, then a `processes` object, in one run and one JSON line).
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import { Session } from "node:inspector/promises";
import os from "node:os";
import { performance } from "node:perf_hooks";
import path from "node:path";
import { env as transformersEnv, pipeline } from "@huggingface/transformers";
import type { Redis } from "ioredis";
import OpenAI from "openai";
import { pino } from "pino";
import { closeModelRouter } from "../services/generation/app-model-router.ts";
import { loadGenerationConfig } from "../services/generation/generation-config.ts";
import { ModelRouter } from "../services/generation/model-router.ts";
import { startFakeOpenAIServer } from "../test/support/fake-openai-server.ts";
import { buildTinyCausalLm } from "../test/support/fixture-models/tiny-causal-lm/build-tiny-causal-lm.ts";
import { startTestApp } from "../test/support/test-app.ts";
import { watchJob } from "../services/gateway/watch-job.ts";
import { startBareQueue } from "./fixtures/bare-queue.ts";
import { startGenerateFloor } from "./fixtures/generate-floor.ts";
import type { AppContext } from "../services/app/app-context.ts";
import { sent } from "./fixtures/sent-commands.ts";
import { jobEventsOverSse, startDeploymentProcesses, startProbedProcess, type DeploymentProcesses } from "./fixtures/deployment-processes.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../test/support/test-env.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 64);
const JOBS = Number(process.env.BENCH_JOBS ?? 40);
const JOB_WARMUP = Number(process.env.BENCH_JOB_WARMUP ?? 40);
const JOBS_ONLY = process.env.BENCH_GENERATION_JOBS_ONLY === "1";
const CPU_PROFILE = process.env.BENCH_GENERATION_CPU_PROFILE;
const TOPOLOGY = process.env.BENCH_GENERATION_TOPOLOGY ?? "both";
if (!["single", "processes", "both"].includes(TOPOLOGY)) throw new Error(`BENCH_GENERATION_TOPOLOGY must be single, processes or both; got ${TOPOLOGY}`);

/** cpuMs: this process's CPU (all its threads) per task: steadier than latency on a loaded machine. */
type Stats = { p50: number; p95: number; mean: number; perSecond: number; cpuMs: number };

/** Runs `task` `count` times, `concurrency` at a time; latency percentiles in ms and throughput. */
async function measure(count: number, concurrency: number, task: () => Promise<unknown>): Promise<Stats> {
  const latencies: number[] = [];
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        const t0 = performance.now();
        await task();
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  const round = (value: number) => Math.round(value * 100) / 100;
  return {
    p50: round(at(0.5)),
    p95: round(at(0.95)),
    mean: round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
    perSecond: round((count / elapsed) * 1000),
    cpuMs: round((cpu.user + cpu.system) / 1000 / count),
  };
}

const round2 = (value: number) => Math.round(value * 100) / 100;
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;

type JobPhases = { running: number[]; token: number[]; succeeded: number[] };

/** Reads a job's events to its end, noting when (ms after `t0`) it was first RUNNING, its first token and its success. */
async function followJob(events: AsyncIterable<{ status: string; token?: string | null }>, id: string, t0: number, phases: JobPhases) {
  let running = false;
  let token = false;
  for await (const event of events) {
    if (!running && event.status === "RUNNING") (running = true), phases.running.push(performance.now() - t0);
    if (!token && event.token) (token = true), phases.token.push(performance.now() - t0);
    if (event.status === "SUCCEEDED") return void phases.succeeded.push(performance.now() - t0);
    if (event.status === "FAILED" || event.status === "CANCELLED") throw new Error(`job ${id} ${event.status}`);
  }
  throw new Error(`job ${id}: events ended before it did`);
}

/**
 * One `generate` as a client sends it to a gateway process: `mutation` over HTTP (with `key`, when given), then the
 * job followed over `jobEvents` (server-sent events), each phase noted in `phases` (`answered`: the mutation's answer).
 */
async function generateOverHttp(graphqlUrl: string, key: string, mutation: string, phases: JobPhases & { answered: number[] }) {
  const t0 = performance.now();
  const response = await fetch(graphqlUrl, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query: mutation }),
  });
  const body = (await response.json()) as { data?: { generate?: { id: string } }; errors?: unknown };
  if (!body.data?.generate) throw new Error(`generate refused: ${JSON.stringify(body.errors)}`);
  const id = body.data.generate.id;
  phases.answered.push(performance.now() - t0);
  await followJob(jobEventsOverSse(graphqlUrl, key, id), id, t0, phases);
}

export default async function generationBench() {
  const single = TOPOLOGY === "processes" ? {} : await singleProcessBench();
  const processes = TOPOLOGY === "single" ? undefined : await deploymentShapedBench();
  console.log(
    JSON.stringify({
      bench: "generation",
      topology: TOPOLOGY,
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      tokensPerReply: TOKENS,
      ...single,
      processes,
      loadavg: os.loadavg().map((value) => round2(value)),
    }),
  );
}

/** Everything on this process's event loop: the fields every figure before issue #20's seventh round used. */
async function singleProcessBench() {
  const fake = await startFakeOpenAIServer();
  const reply = Array.from({ length: TOKENS }, (_, i) => `word${i}`).join(" ");
  fake.setFallback(() => ({ kind: "chat", content: reply, usage: { prompt_tokens: 12, completion_tokens: TOKENS } }));
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-gen-"));
  await buildTinyCausalLm(scratch);
  const config = loadGenerationConfig({ PROVIDER_FAKE_BASE_URL: fake.baseUrl, MODEL_ALIAS_LLM_DEFAULT: "fake:bench", MODEL_ALIAS_LLM_LOCAL: "local:tiny-causal-lm" });
  const router = new ModelRouter(config, { modelsDir: scratch, logger: pino({ level: "silent" }) });
  const messages = [{ role: "user" as const, content: "Say something long." }];

  // chat: raw SDK vs router, same server, same streaming
  const client = new OpenAI({ baseURL: fake.baseUrl, apiKey: "unused", maxRetries: 0 });
  const rawChat = async () => {
    const stream = await client.chat.completions.create({ model: "bench", messages, stream: true, stream_options: { include_usage: true } });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    return text;
  };
  const routerChat = () => router.chat("llm.default", { messages, onToken: () => {} });
  await measure(20, 4, rawChat); // warm up both paths
  await measure(20, 4, routerChat);
  const chatRaw = await measure(REQUESTS, CONCURRENCY, rawChat);
  const chatEluBefore = performance.eventLoopUtilization();
  const chatRouter = await measure(REQUESTS, CONCURRENCY, routerChat);
  const chatEventLoopBusy = Math.round(performance.eventLoopUtilization(chatEluBefore).utilization * 1000) / 1000;
  console.log("chat raw SDK   ", chatRaw);
  console.log("chat router    ", chatRouter);

  const skipped: Stats = { p50: NaN, p95: NaN, mean: NaN, perSecond: NaN, cpuMs: NaN };
  let localRaw = skipped;
  let localRouter = skipped;
  let speechRaw = skipped;
  let speechRouter = skipped;
  if (!JOBS_ONLY) ({ localRaw, localRouter, speechRaw, speechRouter } = await localAndSpeech(scratch, router));

  // generate job end to end vs a direct router call
  const providersFile = path.join(scratch, "providers.json");
  await fs.writeFile(providersFile, JSON.stringify({ providers: { fake: { kind: "openai-compatible", baseUrl: fake.baseUrl } }, models: { "llm.default": { provider: "fake", model: "bench" } } }));
  process.env.PROVIDERS_FILE = providersFile;
  const app = await startTestApp({ worker: { concurrency: CONCURRENCY } });
  const { key } = await app.createProject("bench-generation-" + Date.now());
  /** Per job, ms from the request: the mutation's answer, the first RUNNING event, the first token, SUCCEEDED. */
  const phases = { answered: [] as number[], running: [] as number[], token: [] as number[], succeeded: [] as number[] };
  const job = async () => {
    const t0 = performance.now();
    const response = await app.graphql(`mutation { generate(input: { task: TEXT, prompt: "Say something long." }) { id } }`, undefined, key);
    if (!response.data?.generate) throw new Error(`generate refused: ${JSON.stringify(response.errors)}`);
    const id = response.data.generate.id as string;
    phases.answered.push(performance.now() - t0);
    // As a `jobEvents` subscriber sees it (the row, then events until the job ends). Polling the row
    // every 5 ms, as this bench did, cost more of the shared event loop than the jobs themselves.
    await followJob(watchJob(app.app, id), id, t0, phases);
  };
  // Warmed up at full concurrency, as the direct call is: a job's path is far more code than a router call, and
  // it takes V8 a few hundred jobs to optimise (bench/README.md, generation: 23.8 ms of CPU per job just after
  // 40 warm-up jobs, 12.5-15.8 ms after 160 more, in one process).
  await measure(JOB_WARMUP, CONCURRENCY, job);
  for (const list of Object.values(phases)) list.length = 0;
  const profile = CPU_PROFILE ? await startProfile() : undefined;
  const sqlBefore = sent.sql;
  const redisTotalBefore = sent.redis;
  const redisBefore = new Map(sent.redisByCommand);
  const eluBefore = performance.eventLoopUtilization();
  const jobStats = await measure(JOBS, CONCURRENCY, job);
  // The main thread's busy share over the timed jobs: near 1, a job's latency is mostly its turn waiting behind the others' work.
  const jobEventLoopBusy = Math.round(performance.eventLoopUtilization(eluBefore).utilization * 1000) / 1000;
  if (profile) await stopProfile(profile, CPU_PROFILE!);
  const perJob = (count: number) => Math.round((count / JOBS) * 100) / 100;
  const redisByCommand = Object.fromEntries(
    [...sent.redisByCommand].map(([name, count]) => [name, perJob(count - (redisBefore.get(name) ?? 0))] as const).filter(([, count]) => count > 0),
  );
  const generateJobSent = { sql: perJob(sent.sql - sqlBefore), redis: perJob(sent.redis - redisTotalBefore), redisByCommand };
  console.log("sent per job   ", generateJobSent);
  console.log("generate job   ", jobStats);
  const p50 = (list: number[]) => Math.round([...list].sort((x, y) => x - y)[Math.floor(list.length / 2)]! * 100) / 100;
  const jobPhasesP50Ms = { answered: p50(phases.answered), running: p50(phases.running), firstToken: p50(phases.token), succeeded: p50(phases.succeeded) };
  console.log("job phases p50 ", jobPhasesP50Ms);
  const bullmqFloor = await bullmqCallFloor(app.app.redis, routerChat);
  console.log("BullMQ + call  ", bullmqFloor);
  const stackFloor = await generateStackFloor(app.app, (await app.createProject("bench-generation-floor-" + Date.now())).projectId, async () => (await routerChat()).text);
  console.log("stack floor    ", stackFloor);
  await closeModelRouter(app.app);
  await app.close();

  await router.close();
  await fake.close();
  await fs.rm(scratch, { recursive: true, force: true });

  return {
    chatRawP50Ms: chatRaw.p50,
    chatRouterP50Ms: chatRouter.p50,
    chatRouterOverP50: ratio(chatRouter.p50, chatRaw.p50),
    chatThroughputRatio: ratio(chatRouter.perSecond, chatRaw.perSecond),
    localRawP50Ms: localRaw.p50,
    localRouterP50Ms: localRouter.p50,
    localRouterOverP50: ratio(localRouter.p50, localRaw.p50),
    speechRawP50Ms: speechRaw.p50,
    speechRouterP50Ms: speechRouter.p50,
    speechRouterOverP50: ratio(speechRouter.p50, speechRaw.p50),
    generateJobP50Ms: jobStats.p50,
    generateJobP95Ms: jobStats.p95,
    generateJobsPerSecond: jobStats.perSecond,
    generateJobOverRouterP50: ratio(jobStats.p50, chatRouter.p50),
    generateJobPhasesP50Ms: jobPhasesP50Ms,
    chatRouterCpuMs: chatRouter.cpuMs,
    chatEventLoopBusy,
    generateJobCpuMs: jobStats.cpuMs,
    generateJobOverRouterCpu: ratio(jobStats.cpuMs, chatRouter.cpuMs),
    generateJobSent,
    jobEventLoopBusy,
    bullmqFloorP50Ms: bullmqFloor.p50,
    bullmqFloorCpuMs: bullmqFloor.cpuMs,
    bullmqFloorOverRouterP50: ratio(bullmqFloor.p50, chatRouter.p50),
    generateJobOverBullmqFloorP50: ratio(jobStats.p50, bullmqFloor.p50),
    stackFloorP50Ms: stackFloor.p50,
    stackFloorCpuMs: stackFloor.cpuMs,
    stackFloorOverRouterP50: ratio(stackFloor.p50, chatRouter.p50),
    stackFloorOverRouterCpu: ratio(stackFloor.cpuMs, chatRouter.cpuMs),
    generateJobOverStackFloorP50: ratio(jobStats.p50, stackFloor.p50),
    generateJobOverStackFloorCpu: ratio(jobStats.cpuMs, stackFloor.cpuMs),
  };
}

/**
 * The raw engines' floor: the same router call made by a BullMQ worker (CONCURRENCY at once, in this process as the
 * job's worker is), added and waited for through QueueEvents; no GraphQL, no key, no row, no token stream, no
 * durability of the job's own. A `generate` job on this stack cannot cost less than BullMQ and the call together.
 */
async function bullmqCallFloor(connection: Redis, call: () => Promise<unknown>): Promise<Stats> {
  const { queue, events, close } = await startBareQueue(connection, `bench-generation-floor-${Date.now()}`, "floor", async () => void (await call()), CONCURRENCY);
  const job = async () => (await queue.add("call", {}, { removeOnComplete: true, removeOnFail: true })).waitUntilFinished(events);
  try {
    await measure(JOB_WARMUP, CONCURRENCY, job);
    return await measure(JOBS, CONCURRENCY, job);
  } finally {
    await close();
  }
}

/**
 * The stack's floor (bench/fixtures/generate-floor.ts): the same call as a durable job through a bare graphql-yoga,
 * one prepared statement per state change, BullMQ and sharded pub/sub, followed as a subscriber follows it; nothing
 * of Tessera's own (key, rate and budget checks, input check, observability, the tracker). What a `generate` through
 * GraphQL that keeps every state change durable costs on these parts, in this process as the job is.
 */
async function generateStackFloor(app: AppContext, projectId: string, call: () => Promise<string>): Promise<Stats> {
  const floor = await startGenerateFloor({ db: app.db, redis: app.redis, projectId, concurrency: CONCURRENCY, call });
  try {
    await measure(JOB_WARMUP, CONCURRENCY, () => floor.generate());
    // Profiled beside the job's phase (file-floor.cpuprofile): what the job does that the floor does not.
    const profile = CPU_PROFILE ? await startProfile() : undefined;
    const stats = await measure(JOBS, CONCURRENCY, () => floor.generate());
    if (profile) await stopProfile(profile, CPU_PROFILE!.replace(/(\.cpuprofile)?$/, "-floor.cpuprofile"));
    return stats;
  } finally {
    await floor.close();
  }
}

/**
 * The deployment's shape (bench/fixtures/deployment-processes.ts): the gateway, the worker and the fake model server
 * each a process of its own; this process is the client. The direct call is the router here against the same model
 * server process; the job is the `generate` mutation sent to the gateway, followed over `jobEvents` (server-sent
 * events) as a client follows it. CPU per call or job is summed over the processes each side uses; each process's
 * event-loop busy share is over the timed phase.
 */
async function deploymentShapedBench() {
  const processes = await startDeploymentProcesses({ workerConcurrency: CONCURRENCY, tokens: TOKENS });
  let router: ModelRouter | undefined;
  try {
    // The router's models folder is never read: only the fake provider is configured.
    router = new ModelRouter(loadGenerationConfig({ PROVIDER_FAKE_BASE_URL: processes.modelBaseUrl, MODEL_ALIAS_LLM_DEFAULT: "fake:bench" }), {
      modelsDir: os.tmpdir(),
      logger: pino({ level: "silent" }),
    });
    const messages = [{ role: "user" as const, content: "Say something long." }];
    const directCall = () => router!.chat("llm.default", { messages, onToken: () => {} });
    await measure(JOB_WARMUP, CONCURRENCY, directCall);
    const direct = await measureAcross(processes, REQUESTS, directCall);

    const { key } = await processes.createProject("bench-generation-processes-" + Date.now());
    const phases = { answered: [] as number[], running: [] as number[], token: [] as number[], succeeded: [] as number[] };
    const job = () => generateOverHttp(processes.graphqlUrl, key, `mutation { generate(input: { task: TEXT, prompt: "Say something long." }) { id } }`, phases);
    await measure(JOB_WARMUP, CONCURRENCY, job);
    for (const list of Object.values(phases)) list.length = 0;
    const profile = CPU_PROFILE ? await startProfile() : undefined;
    if (CPU_PROFILE) await processes.startProfiles();
    const jobs = await measureAcross(processes, JOBS, job);
    if (profile) await stopProfile(profile, CPU_PROFILE!.replace(/\.cpuprofile$/, "") + "-client.cpuprofile");
    if (CPU_PROFILE) await processes.stopProfiles(CPU_PROFILE.replace(/\.cpuprofile$/, ""));
    const p50 = (list: number[]) => round2([...list].sort((x, y) => x - y)[Math.floor(list.length / 2)]!);
    const directCpu = { client: direct.cpuMs.client, model: direct.cpuMs.model, total: round2(direct.cpuMs.client + direct.cpuMs.model) };
    const jobCpu = { ...jobs.cpuMs, total: round2(Object.values(jobs.cpuMs).reduce((a, b) => a + b, 0)) };
    const stackFloor = await deploymentShapedFloor(processes, direct.stats.p50);
    const result = {
      direct: { ...direct.stats, cpuMs: directCpu, eventLoopBusy: { client: direct.busy.client, model: direct.busy.model } },
      job: {
        ...jobs.stats,
        phasesP50Ms: { answered: p50(phases.answered), running: p50(phases.running), firstToken: p50(phases.token), succeeded: p50(phases.succeeded) },
        cpuMs: jobCpu,
        eventLoopBusy: jobs.busy,
        sent: jobs.sent,
      },
      jobOverDirectP50: ratio(jobs.stats.p50, direct.stats.p50),
      jobOverDirectP95: ratio(jobs.stats.p95, direct.stats.p95),
      jobOverDirectCpu: ratio(jobCpu.total, directCpu.total),
      stackFloor,
      jobOverStackFloorP50: ratio(jobs.stats.p50, stackFloor.p50),
      jobOverStackFloorCpu: ratio(jobCpu.total, stackFloor.cpuMs.total),
    };
    console.log("processes      ", JSON.stringify(result));
    return result;
  } finally {
    await router?.close();
    await processes.close();
  }
}

/**
 * The stack's floor in the deployment's shape (bench/fixtures/generate-floor.ts): its gateway and its worker each a
 * process (generate-floor-process.ts), against the same model server process, followed over server-sent events by
 * the same client as Tessera's job. CPU per job summed over the client, the two floor processes and the model server.
 */
async function deploymentShapedFloor(processes: DeploymentProcesses, directP50: number) {
  const { projectId } = await processes.createProject("bench-generation-floor-" + Date.now());
  const env = {
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    BENCH_FLOOR_PREFIX: `bench-generate-floor-${randomUUID().slice(0, 8)}`,
    BENCH_FLOOR_PROJECT: projectId,
    BENCH_FLOOR_MODEL_URL: processes.modelBaseUrl,
    BENCH_FLOOR_CONCURRENCY: String(CONCURRENCY),
  };
  const gateway = await startProbedProcess("floor-gateway", "generate-floor-process.ts", { ...env, BENCH_FLOOR_ROLE: "gateway" });
  const worker = await startProbedProcess("floor-worker", "generate-floor-process.ts", { ...env, BENCH_FLOOR_ROLE: "worker" }).catch(async (error) => {
    await gateway.close();
    throw error;
  });
  try {
    const phases = { answered: [] as number[], running: [] as number[], token: [] as number[], succeeded: [] as number[] };
    const job = () => generateOverHttp(gateway.url, "", `mutation { generate(input: { prompt: "Say something long." }) { id } }`, phases);
    await measure(JOB_WARMUP, CONCURRENCY, job);
    await Promise.all([processes.mark(), gateway.mark(), worker.mark()]);
    const elu = performance.eventLoopUtilization();
    const profile = CPU_PROFILE ? await startProfile() : undefined;
    if (CPU_PROFILE) await Promise.all([gateway.startProfile(), worker.startProfile()]);
    const stats = await measure(JOBS, CONCURRENCY, job);
    const clientBusy = performance.eventLoopUtilization(elu).utilization;
    if (profile) await stopProfile(profile, CPU_PROFILE!.replace(/\.cpuprofile$/, "") + "-floor-client.cpuprofile");
    if (CPU_PROFILE) {
      const prefix = CPU_PROFILE.replace(/\.cpuprofile$/, "");
      await Promise.all([gateway.stopProfile(`${prefix}-floor-gateway.cpuprofile`), worker.stopProfile(`${prefix}-floor-worker.cpuprofile`)]);
    }
    const [tessera, floorGateway, floorWorker] = await Promise.all([processes.read(), gateway.read(), worker.read()]);
    const perJob = (value: number) => round2(value / JOBS);
    const busy = (value: number) => Math.round(value * 1000) / 1000;
    const cpuMs = { client: stats.cpuMs, gateway: perJob(floorGateway.cpuMs), worker: perJob(floorWorker.cpuMs), model: perJob(tessera.model.cpuMs) };
    const floor = {
      p50: stats.p50,
      p95: stats.p95,
      perSecond: stats.perSecond,
      answeredP50Ms: round2([...phases.answered].sort((x, y) => x - y)[Math.floor(phases.answered.length / 2)]!),
      cpuMs: { ...cpuMs, total: round2(cpuMs.client + cpuMs.gateway + cpuMs.worker + cpuMs.model) },
      eventLoopBusy: { client: busy(clientBusy), gateway: busy(floorGateway.eventLoopBusy), worker: busy(floorWorker.eventLoopBusy), model: busy(tessera.model.eventLoopBusy) },
      sent: { sql: { gateway: perJob(floorGateway.sql), worker: perJob(floorWorker.sql) }, redis: { gateway: perJob(floorGateway.redis), worker: perJob(floorWorker.redis) } },
      overDirectP50: ratio(stats.p50, directP50),
    };
    console.log("stack floor    ", JSON.stringify(floor));
    return floor;
  } finally {
    await Promise.all([gateway.close(), worker.close()]);
  }
}

/** `measure` with every child's CPU, event-loop busy share and sent commands read over the same window. */
async function measureAcross(processes: DeploymentProcesses, count: number, task: () => Promise<unknown>) {
  await processes.mark();
  const elu = performance.eventLoopUtilization();
  const stats = await measure(count, CONCURRENCY, task);
  const clientBusy = performance.eventLoopUtilization(elu).utilization;
  const children = await processes.read();
  const busy = (value: number) => Math.round(value * 1000) / 1000;
  const perItem = (value: number) => round2(value / count);
  return {
    stats: { p50: stats.p50, p95: stats.p95, perSecond: stats.perSecond },
    cpuMs: { client: stats.cpuMs, gateway: perItem(children.gateway.cpuMs), worker: perItem(children.worker.cpuMs), model: perItem(children.model.cpuMs) },
    busy: { client: busy(clientBusy), gateway: busy(children.gateway.eventLoopBusy), worker: busy(children.worker.eventLoopBusy), model: busy(children.model.eventLoopBusy) },
    sent: {
      sql: { gateway: perItem(children.gateway.sql), worker: perItem(children.worker.sql) },
      redis: { gateway: perItem(children.gateway.redis), worker: perItem(children.worker.redis) },
      redisByCommand: {
        gateway: Object.fromEntries(Object.entries(children.gateway.redisByCommand).map(([name, n]) => [name, perItem(n)])),
        worker: Object.fromEntries(Object.entries(children.worker.redisByCommand).map(([name, n]) => [name, perItem(n)])),
      },
    },
  };
}

/** The transformers provider against the raw pipeline, and the espeak provider against espeak-ng. */
async function localAndSpeech(scratch: string, router: ModelRouter) {
    // local generation: raw pipeline vs provider through the router
    transformersEnv.allowRemoteModels = false;
    transformersEnv.localModelPath = `${scratch}/`;
    const generator: any = await pipeline("text-generation", "tiny-causal-lm", { dtype: "fp32", device: "cpu" });
    const rawLocal = () => generator("abc", { max_new_tokens: 20, do_sample: false, return_full_text: false });
    const routerLocal = () => router.chat("llm.local", { messages: [{ role: "user", content: "abc" }], maxTokens: 20, onToken: () => {} });
    await measure(10, 1, rawLocal);
    await measure(10, 1, routerLocal);
    const localRaw = await measure(Math.max(20, REQUESTS / 4), 1, rawLocal);
    const localRouter = await measure(Math.max(20, REQUESTS / 4), 1, routerLocal);
    console.log("local raw      ", localRaw);
    console.log("local router   ", localRouter);

    // speech: raw espeak-ng vs the provider (which also fixes the WAV header)
    const sentence = "Tessera speaks this sentence for the benchmark.";
    const rawSpeech = () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn("espeak-ng", ["--stdout", "--stdin", "-v", "en-us"]);
        child.stdout.resume();
        child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`espeak-ng exit ${code}`))));
        child.stdin.end(sentence);
      });
    const routerSpeech = () => router.speak("speech.default", { text: sentence });
    const speechCount = Math.max(10, Math.round(REQUESTS / 10));
    const speechRaw = await measure(speechCount, 2, rawSpeech);
    const speechRouter = await measure(speechCount, 2, routerSpeech);
    console.log("speech raw     ", speechRaw);
    console.log("speech router  ", speechRouter);
  return { localRaw, localRouter, speechRaw, speechRouter };
}

async function startProfile() {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 250 }); // µs: a job's path is many short calls
  await session.post("Profiler.start");
  return session;
}

async function stopProfile(session: Session, file: string) {
  const { profile } = await session.post("Profiler.stop");
  await fs.writeFile(file, JSON.stringify(profile));
  session.disconnect();
  console.log(`CPU profile written to ${file}`);
}
