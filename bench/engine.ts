/**
 * `npm run bench -- engine`: what the workflow engine costs per step, against
 * a bare BullMQ job round trip in the same run, on the same Redis.
 *
 * - chain: BENCH_CHAIN no-op steps, each needing the one before, against as
 *   many BullMQ jobs run one after the other (add, wait until done).
 * - fan-out: a `map` over BENCH_FANOUT items (concurrency BENCH_FANOUT) of a
 *   no-op step, against BENCH_FANOUT BullMQ jobs added at once.
 * Each twice: with `transform` (no side effects: finished inside the advance
 * that readies it, no job), and with `bench.noop`, a step type registered
 * here that is queued and run by a worker like any step with effects.
 * All use BENCH_CONCURRENCY worker slots. The database is DATABASE_URL.
 * Each fan-out (bare and both engine maps) runs BENCH_FANOUT_RUNS times: its figure is the median, so the ratio of
 * two tens-of-milliseconds phases is not read from one sample of each.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { z } from "zod";
import { createAppContext, type AppContext } from "../services/app/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { startWorkerPool } from "../services/worker/worker-pool.ts";
import { publishWorkflow, startRun } from "../workflows/engine/run-service.ts";
import { TERMINAL_RUN_STATUSES } from "../workflows/engine/run-events.ts";
import { registerStepType } from "../workflows/steps/step-registry.ts";
import { defineStepType } from "../workflows/steps/step-type.ts";
import { startBareQueue } from "./fixtures/bare-queue.ts";
import { sent } from "./fixtures/sent-commands.ts";

// A step that does nothing but has no `inline`: what a step with effects costs the engine (a job, a worker, rows).
registerStepType(
  defineStepType({
    uses: "bench.noop",
    description: "returns its input, through a job",
    with: z.record(z.string(), z.unknown()),
    output: z.record(z.string(), z.unknown()),
    async run(input) {
      return input;
    },
  }),
);

const CHAIN = Number(process.env.BENCH_CHAIN ?? 100);
const FANOUT = Number(process.env.BENCH_FANOUT ?? 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const FANOUT_RUNS = Number(process.env.BENCH_FANOUT_RUNS ?? 5);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** `work` FANOUT_RUNS times, one after another: each run's result. */
async function repeated<T>(work: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let index = 0; index < FANOUT_RUNS; index++) results.push(await work());
  return results;
}

const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** Statements and Redis commands sent while `work` ran, with its result and this process's CPU time (ms: on a loaded machine, steadier than wall time). */
async function counted<T>(work: () => Promise<T>): Promise<[T, number, number, number]> {
  const before = sent.sql;
  const redisBefore = sent.redis;
  const cpu = process.cpuUsage();
  const result = await work();
  const used = process.cpuUsage(cpu);
  return [result, sent.sql - before, (used.user + used.system) / 1000, sent.redis - redisBefore];
}

async function bareBullmq(app: AppContext, prefix: string) {
  const { queue, events, close } = await startBareQueue(app.redis, prefix, "bench-bare", async () => null, CONCURRENCY);
  const options = { removeOnComplete: true, removeOnFail: true };
  // Warm up, then a chain: each job waits for the one before.
  await (await queue.add("job", {}, options)).waitUntilFinished(events);
  let started = performance.now();
  for (let index = 0; index < CHAIN; index++) await (await queue.add("job", { index }, options)).waitUntilFinished(events);
  const chainMs = performance.now() - started;
  const fanOutRunsMs = await repeated(async () => {
    const fanOutStarted = performance.now();
    const jobs = await queue.addBulk(Array.from({ length: FANOUT }, (_, index) => ({ name: "job", data: { index }, opts: options })));
    await Promise.all(jobs.map((job) => job.waitUntilFinished(events)));
    return performance.now() - fanOutStarted;
  });
  await close();
  return { chainMs, fanOutMs: median(fanOutRunsMs), fanOutRunsMs };
}

/** Resolves when the run ends: the run's events, with the row as the backstop (read once subscribed, and each idle second). */
async function runToEnd(app: AppContext, projectId: string, slug: string) {
  const started = performance.now();
  const run = await startRun(app, { projectId, slug, input: {} });
  const ended = (row: { status: string; error: unknown }) => {
    if (row.status !== "SUCCEEDED") throw new Error(`run ${slug} ended ${row.status}: ${JSON.stringify(row.error)}`);
    return performance.now() - started;
  };
  // A run of steps without side effects may end inside its start.
  if (TERMINAL_RUN_STATUSES.has(run.status)) return ended(run);
  const events = app.events.subscribe("run", run.id)[Symbol.asyncIterator]();
  try {
    let next = events.next();
    await app.events.whenSubscribed("run", run.id);
    for (let readRow = true; ; ) {
      if (readRow) {
        const row = await app.db.run.findUniqueOrThrow({ where: { id: run.id } });
        if (TERMINAL_RUN_STATUSES.has(row.status)) return ended(row);
      }
      const result = await Promise.race([next, new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000))]);
      if (result && !result.done) next = events.next();
      readRow = !result || Boolean(result.done) || (result.value.type === "RUN_STATUS" && TERMINAL_RUN_STATUSES.has(result.value.status ?? ""));
    }
  } finally {
    await events.return?.();
  }
}

function chainWorkflow(slug: string, length: number, uses = "transform") {
  const steps = Array.from({ length }, (_, index) =>
    index === 0
      ? `  - id: s0\n    uses: ${uses}\n    with: { n: 0 }`
      : `  - id: s${index}\n    uses: ${uses}\n    with: { n: "\${{ steps.s${index - 1}.output.n + 1 }}" }`,
  );
  return `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug}\nsteps:\n${steps.join("\n")}\noutputs:\n  n: "\${{ steps.s${length - 1}.output.n }}"\n`;
}

function fanOutWorkflow(slug: string, width: number, uses = "transform") {
  return `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug}\nsteps:\n  - id: each\n    uses: map\n    with:\n      items: "\${{ [1..${width}] }}"\n      concurrency: ${width}\n      step: { uses: ${uses}, with: { v: "\${{ item }}" } }\n`;
}

export default async function engineBench() {
  const config = loadConfig({ ...process.env, QUEUE_PREFIX: `bench-engine-${randomUUID().slice(0, 8)}`, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" });
  const log = (message: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
  log("applying migrations");
  await applyMigrations(config.DATABASE_URL);
  log("connecting");
  const app = await createAppContext(config, createLogger(config.LOG_LEVEL, "bench"));
  const { project } = await createApiKey(app.db, `bench-engine-${randomUUID()}`);
  try {
    log("bare BullMQ");
    const [bare, , bareCpuMs, bareRedis] = await counted(() => bareBullmq(app, config.QUEUE_PREFIX));
    log(`bare BullMQ: chain of ${CHAIN} ${round(bare.chainMs)} ms (${round(bare.chainMs / CHAIN)} ms/job); ${FANOUT} at once ${round(bare.fanOutMs)} ms (median of ${FANOUT_RUNS})`);

    const pool = startWorkerPool(app, { queues: ["workflow-run", "workflow-step"], concurrency: CONCURRENCY });
    await publishWorkflow(app, project.id, chainWorkflow("warm-up", 3));
    await runToEnd(app, project.id, "warm-up");
    await publishWorkflow(app, project.id, chainWorkflow("chain", CHAIN));
    const [chainMs, chainSql] = await counted(() => runToEnd(app, project.id, "chain"));
    log(`engine: chain of ${CHAIN} transforms ${round(chainMs)} ms (${round(chainMs / CHAIN)} ms/step)`);
    await publishWorkflow(app, project.id, fanOutWorkflow("fan-out", FANOUT));
    const [fanOutRunsMs] = await counted(() => repeated(() => runToEnd(app, project.id, "fan-out")));
    const fanOutMs = median(fanOutRunsMs);
    log(`engine: map over ${FANOUT} transforms ${round(fanOutMs)} ms (median of ${FANOUT_RUNS})`);
    await publishWorkflow(app, project.id, chainWorkflow("queued-chain", CHAIN, "bench.noop"));
    const [queuedChainMs, queuedChainSql, queuedChainCpuMs, queuedChainRedis] = await counted(() => runToEnd(app, project.id, "queued-chain"));
    log(`engine: chain of ${CHAIN} queued no-op steps ${round(queuedChainMs)} ms (${round(queuedChainMs / CHAIN)} ms/step)`);
    await publishWorkflow(app, project.id, fanOutWorkflow("queued-fan-out", FANOUT, "bench.noop"));
    const [queuedFanOutRunsMs, queuedFanOutSql, queuedFanOutCpuMs, queuedFanOutRedis] = await counted(() => repeated(() => runToEnd(app, project.id, "queued-fan-out")));
    const queuedFanOutMs = median(queuedFanOutRunsMs);
    log(`engine: map over ${FANOUT} queued no-op steps ${round(queuedFanOutMs)} ms (median of ${FANOUT_RUNS})`);
    const items = FANOUT * FANOUT_RUNS;
    await pool.close();
    await Promise.all(["workflow-run", "workflow-step"].map((name) => app.queues.queue(name as "workflow-run").obliterate({ force: true })));

    const stepMs = chainMs / CHAIN;
    const queuedStepMs = queuedChainMs / CHAIN;
    const jobMs = bare.chainMs / CHAIN;
    console.log(
      JSON.stringify({
        bench: "engine",
        chainSteps: CHAIN,
        fanOutWidth: FANOUT,
        // Each fan-out's figure is the median of this many runs; *RunsMs lists them in order.
        fanOutRuns: FANOUT_RUNS,
        concurrency: CONCURRENCY,
        bullmqJobRoundTripMs: round(jobMs),
        engineStepMs: round(stepMs),
        engineStepOverheadMs: round(stepMs - jobMs),
        engineStepOverBullmq: round(stepMs / jobMs),
        bullmqFanOutMs: round(bare.fanOutMs),
        bullmqFanOutRunsMs: bare.fanOutRunsMs.map((ms) => round(ms, 1)),
        engineFanOutMs: round(fanOutMs),
        engineFanOutOverBullmq: round(fanOutMs / bare.fanOutMs),
        engineQueuedStepMs: round(queuedStepMs),
        engineQueuedStepOverBullmq: round(queuedStepMs / jobMs),
        // Whole runs (start, the end's read included) divided by their steps.
        engineSqlPerStep: round(chainSql / CHAIN),
        engineQueuedSqlPerStep: round(queuedChainSql / CHAIN),
        engineQueuedFanOutMs: round(queuedFanOutMs),
        engineQueuedFanOutRunsMs: queuedFanOutRunsMs.map((ms) => round(ms, 1)),
        engineQueuedFanOutOverBullmq: round(queuedFanOutMs / bare.fanOutMs),
        // This process's CPU (gateway-side engine, worker and BullMQ client together): the bare side's chain and
        // fan-outs together per job, a queued step's and a queued map item's whole runs divided by their steps.
        bullmqCpuMsPerJob: round(bareCpuMs / (CHAIN + FANOUT * FANOUT_RUNS)),
        engineQueuedCpuMsPerStep: round(queuedChainCpuMs / CHAIN),
        engineQueuedFanOutCpuMsPerItem: round(queuedFanOutCpuMs / items),
        engineQueuedFanOutSqlPerItem: round(queuedFanOutSql / items),
        // Redis commands of this process, the same way: per bare job (chain and fan-out), per queued step and map item.
        bullmqRedisPerJob: round(bareRedis / (CHAIN + FANOUT * FANOUT_RUNS)),
        engineQueuedRedisPerStep: round(queuedChainRedis / CHAIN),
        engineQueuedFanOutRedisPerItem: round(queuedFanOutRedis / items),
        loadavg: os.loadavg().map((value) => round(value)),
      }),
    );
  } finally {
    await app.db.project.delete({ where: { id: project.id } }).catch(() => {});
    await app.close();
  }
}
