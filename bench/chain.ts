/**
 * `npm run bench -- chain`: a workflow run end to end, as a client sees it.
 * The client sends `runWorkflow` over GraphQL, opens the `runEvents`
 * subscription (SSE) and stops the clock at the RUN_STATUS SUCCEEDED event;
 * for a 1-step and a 10-step chain of `transform` steps (each step reads the
 * one before). Gateway and worker share this process, as `npm start` runs them.
 *
 * Against, in the same run and interleaved round by round: a bare BullMQ
 * chain on the same Redis (add a job, wait until it is done, add the next),
 * 1 and 10 jobs long.
 *
 * Sizes: BENCH_CHAIN_RUNS rounds (default 40) after BENCH_CHAIN_WARMUP (default 5).
 */
import { randomUUID } from "node:crypto";
import { Queue, QueueEvents, Worker } from "bullmq";
import { createAppContext } from "../services/app/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import { startWorkerPool } from "../services/worker/worker-pool.ts";
import { TesseraClient } from "../packages/client/index.ts";

const RUNS = Number(process.env.BENCH_CHAIN_RUNS ?? 40);
const WARMUP = Number(process.env.BENCH_CHAIN_WARMUP ?? 5);
const LENGTHS = [1, 10] as const;

const round = (value: number, digits = 2) => Number(value.toFixed(digits));
const percentile = (values: number[], share: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? NaN;
};

function chainWorkflow(slug: string, length: number) {
  const steps = Array.from({ length }, (_, index) =>
    index === 0
      ? `  - id: s0\n    uses: transform\n    with: { n: 0 }`
      : `  - id: s${index}\n    uses: transform\n    with: { n: "\${{ steps.s${index - 1}.output.n + 1 }}" }`,
  );
  return `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug}\nsteps:\n${steps.join("\n")}\noutputs:\n  n: "\${{ steps.s${length - 1}.output.n }}"\n`;
}

const RUN_WORKFLOW = `mutation ($slug: String!) { runWorkflow(slug: $slug) { id status } }`;
const RUN_EVENTS = `subscription ($id: ID!) { runEvents(id: $id) { type status error { code message } } }`;
type RunEvent = { type: string; status: string | null; error: { code: string; message: string } | null };

/** Milliseconds from sending `runWorkflow` to the SUCCEEDED event on `runEvents`; `answered` gets the mutation's own time. */
async function runThroughGateway(client: TesseraClient, slug: string, answered?: number[]): Promise<number> {
  const started = performance.now();
  const { runWorkflow } = await client.request<{ runWorkflow: { id: string } }, { slug: string }>(RUN_WORKFLOW, { slug });
  answered?.push(performance.now() - started);
  for await (const { runEvents: event } of client.subscribe<{ runEvents: RunEvent }, { id: string }>(RUN_EVENTS, { id: runWorkflow.id })) {
    if (event.type !== "RUN_STATUS") continue;
    if (event.status === "SUCCEEDED") return performance.now() - started;
    if (event.status === "FAILED" || event.status === "CANCELLED") throw new Error(`run ${runWorkflow.id} of ${slug} ended ${event.status}: ${event.error?.message}`);
  }
  throw new Error(`the runEvents stream of run ${runWorkflow.id} ended before the run did`);
}

export default async function chainBench() {
  const config = loadConfig({ ...process.env, QUEUE_PREFIX: `bench-chain-${randomUUID().slice(0, 8)}`, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" });
  const log = (message: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
  await applyMigrations(config.DATABASE_URL);
  const app = await createAppContext(config, createLogger(config.LOG_LEVEL, "bench"));
  const gateway = createGateway(app);
  const { port } = await gateway.listen(0, "127.0.0.1");
  const { key, project } = await createApiKey(app.db, `bench-chain-${randomUUID()}`);
  const client = new TesseraClient({ url: `http://127.0.0.1:${port}/graphql`, apiKey: key });
  const pool = startWorkerPool(app, { queues: ["workflow-run", "workflow-step"] });

  // The bare BullMQ chain: one job at a time, each added once the one before is done.
  const prefix = config.QUEUE_PREFIX;
  const bareQueue = new Queue("bench-chain-bare", { connection: app.redis, prefix });
  // QueueEvents blocks on its connection and leaves one it is given open: this bench owns and closes it.
  const eventsConnection = app.redis.duplicate();
  const bareEvents = new QueueEvents("bench-chain-bare", { connection: eventsConnection, prefix });
  const bareWorker = new Worker("bench-chain-bare", async (job) => job.data, { connection: app.redis, prefix, concurrency: config.WORKER_CONCURRENCY });
  const bareChain = async (length: number) => {
    const started = performance.now();
    for (let index = 0; index < length; index++) {
      await (await bareQueue.add("step", { index }, { removeOnComplete: true, removeOnFail: true })).waitUntilFinished(bareEvents);
    }
    return performance.now() - started;
  };

  try {
    await Promise.all([bareEvents.waitUntilReady(), bareWorker.waitUntilReady()]);
    for (const length of LENGTHS) await client.request(`mutation ($definition: String!) { publishWorkflow(definition: $definition) { number } }`, { definition: chainWorkflow(`chain-${length}`, length) });
    log(`warming up (${WARMUP} rounds)`);
    for (let index = 0; index < WARMUP; index++) for (const length of LENGTHS) await Promise.all([runThroughGateway(client, `chain-${length}`), bareChain(length)]);

    const samples = { engine: { 1: [] as number[], 10: [] as number[] }, bullmq: { 1: [] as number[], 10: [] as number[] } };
    const answered: number[] = [];
    log(`measuring (${RUNS} rounds)`);
    // Interleaved, one at a time, so load from elsewhere falls on both sides alike.
    for (let index = 0; index < RUNS; index++) {
      for (const length of LENGTHS) {
        samples.bullmq[length].push(await bareChain(length));
        samples.engine[length].push(await runThroughGateway(client, `chain-${length}`, answered));
      }
    }
    const figures = (values: number[]) => ({ p50Ms: round(percentile(values, 0.5)), p90Ms: round(percentile(values, 0.9)) });
    const engine1 = figures(samples.engine[1]);
    const engine10 = figures(samples.engine[10]);
    const bullmq1 = figures(samples.bullmq[1]);
    const bullmq10 = figures(samples.bullmq[10]);
    // What each step past the first adds, at p50: the per-step cost without the run's start and end.
    const engineStepMs = (engine10.p50Ms - engine1.p50Ms) / 9;
    const bullmqStepMs = (bullmq10.p50Ms - bullmq1.p50Ms) / 9;
    log(`1 step: engine p50 ${engine1.p50Ms} ms, bare BullMQ ${bullmq1.p50Ms} ms; 10 steps: engine p50 ${engine10.p50Ms} ms, bare BullMQ ${bullmq10.p50Ms} ms`);
    console.log(
      JSON.stringify({
        bench: "chain",
        runs: RUNS,
        engine1Step: engine1,
        engine10Steps: engine10,
        bullmq1Job: bullmq1,
        bullmq10Jobs: bullmq10,
        // The `runWorkflow` mutation alone (run stored, advance job queued), in every run of both lengths.
        runWorkflowAnswerP50Ms: round(percentile(answered, 0.5)),
        engineMsPerAddedStep: round(engineStepMs),
        bullmqMsPerAddedJob: round(bullmqStepMs),
        engine1OverBullmq: round(engine1.p50Ms / bullmq1.p50Ms),
        engine10OverBullmq: round(engine10.p50Ms / bullmq10.p50Ms),
        loadavg: (await import("node:os")).loadavg().map((value) => round(value)),
      }),
    );
  } finally {
    await bareWorker.close();
    await bareEvents.close();
    eventsConnection.disconnect();
    await bareQueue.obliterate({ force: true }).catch(() => {});
    await bareQueue.close();
    await pool.close();
    await Promise.all(["workflow-run", "workflow-step"].map((name) => app.queues.queue(name as "workflow-run").obliterate({ force: true }).catch(() => {})));
    await gateway.close();
    await app.db.project.delete({ where: { id: project.id } }).catch(() => {});
    await app.close();
  }
}
