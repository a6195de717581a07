/**
 * `npm run bench -- jobs-events`: what following N jobs costs the gateway, as N `jobEvents` streams (one per job,
 * BENCH_JOBS_EVENTS_CONCURRENCY at a time, as a client that cannot share a stream does) against one `jobsEvents`
 * stream of all N. The gateway runs in its own process (bench/fixtures/deployment-processes.ts, probe preloaded), so
 * its CPU, SQL statements and Redis commands per followed job are read apart from the client's.
 *
 * Two cases, each round running both shapes one after the other (alternating which goes first):
 * - `finished`: the jobs have ended; each stream gives their states and ends (the fixed cost of following).
 * - `live`: the jobs are QUEUED; once every stream has given its first states, the bench publishes, per job, a
 *   RUNNING event and a SUCCEEDED one on the gateway's event bus (as a worker would), and each stream ends.
 *
 * Sizes: BENCH_JOBS_EVENTS_N jobs (default 20), BENCH_JOBS_EVENTS_ROUNDS (default 30) after
 * BENCH_JOBS_EVENTS_WARMUP rounds (default 10). No worker, no model: jobs are rows written straight to the database.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { createDatabase } from "../services/core/database.ts";
import { createEventBus, type JobEvent } from "../services/queue/event-bus.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../test/support/test-env.ts";
import { startDeploymentProcesses, subscriptionOverSse } from "./fixtures/deployment-processes.ts";
import type { ProbeReading } from "./fixtures/process-probe.ts";

const N = Number(process.env.BENCH_JOBS_EVENTS_N ?? 20);
const ROUNDS = Number(process.env.BENCH_JOBS_EVENTS_ROUNDS ?? 30);
const WARMUP = Number(process.env.BENCH_JOBS_EVENTS_WARMUP ?? 10);
const CONCURRENCY = Number(process.env.BENCH_JOBS_EVENTS_CONCURRENCY ?? 8);
const SETTLE_MS = 120;

const ONE = `subscription ($id: ID!) { jobEvents(id: $id) { jobId status progress } }`;
const MANY = `subscription ($ids: [ID!]!) { jobsEvents(ids: $ids) { jobId status progress } }`;
type Seen = { jobId: string; status: string };

const round = (value: number, digits = 3) => Number(value.toFixed(digits));

/** A subscription over server-sent events: `onEvent` for each event, settling when the gateway completes the stream. */
async function followSse(url: string, key: string, query: string, variables: Record<string, unknown>, onEvent: (event: Seen) => void): Promise<void> {
  for await (const data of subscriptionOverSse<{ jobEvents?: Seen; jobsEvents?: Seen }>(url, key, query, variables)) {
    const event = data.jobEvents ?? data.jobsEvents;
    if (!event) throw new Error(`no event in ${JSON.stringify(data)}`);
    onEvent(event);
  }
}

/** Runs `task` over `items`, `limit` at a time. */
async function inTurn<T>(items: T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!);
  }));
}

type Totals = { cpuMs: number; sql: number; redis: number; byCommand: Record<string, number>; jobs: number };
const emptyTotals = (): Totals => ({ cpuMs: 0, sql: 0, redis: 0, byCommand: {}, jobs: 0 });
function add(totals: Totals, reading: ProbeReading, jobs: number) {
  totals.cpuMs += reading.cpuMs;
  totals.sql += reading.sql;
  totals.redis += reading.redis;
  for (const [command, count] of Object.entries(reading.redisByCommand)) totals.byCommand[command] = (totals.byCommand[command] ?? 0) + count;
  totals.jobs += jobs;
}
/** Per followed job, the CPU of an idle window (`idleCpuMs`, the measuring itself) taken off each window first. */
const perJob = (totals: Totals, idleCpuMs: number) => ({
  cpuMs: round((totals.cpuMs - idleCpuMs * (totals.jobs / N)) / totals.jobs),
  sql: round(totals.sql / totals.jobs, 2),
  redis: round(totals.redis / totals.jobs, 2),
  redisByCommand: Object.fromEntries(Object.entries(totals.byCommand).map(([command, count]) => [command, round(count / totals.jobs, 2)])),
});

export default async function jobsEventsBench() {
  const prefix = `bench-jobs-events-${randomUUID().slice(0, 8)}`;
  const unlimited = "1000000";
  const processes = await startDeploymentProcesses({
    processes: ["gateway"],
    env: {
      QUEUE_PREFIX: prefix,
      // The rate counts are still sent (part of each request's cost); only the limits are out of the way.
      RATE_LIMIT_PROJECT_PER_SECOND: unlimited,
      RATE_LIMIT_PROJECT_BURST: unlimited,
      RATE_LIMIT_ADDRESS_PER_SECOND: unlimited,
      RATE_LIMIT_ADDRESS_BURST: unlimited,
    },
  });
  const db = createDatabase(TEST_DATABASE_URL);
  const publisher = new Redis(TEST_REDIS_URL);
  const subscriber = new Redis(TEST_REDIS_URL);
  const bus = createEventBus(publisher, subscriber, prefix);
  const { key, projectId } = await processes.createProject();
  const url = processes.graphqlUrl;

  const finishedJobs = async () =>
    (await db.job.createManyAndReturn({ data: Array.from({ length: N }, () => ({ projectId, kind: "GENERATE" as const, status: "SUCCEEDED" as const })), select: { id: true } })).map((job) => job.id);
  const queuedJobs = async () =>
    (await db.job.createManyAndReturn({ data: Array.from({ length: N }, () => ({ projectId, kind: "GENERATE" as const })), select: { id: true } })).map((job) => job.id);
  const event = (jobId: string, status: string, progress: number): JobEvent => ({ jobId, status, progress, at: new Date().toISOString() });

  /** Follows `ids` in the given shape; with `live`, publishes each job's RUNNING and SUCCEEDED once every first state came. */
  async function follow(shape: "one" | "many", ids: string[], live: boolean) {
    let firsts = 0;
    let allFirst!: () => void;
    const allFirstSeen = new Promise<void>((resolve) => (allFirst = resolve));
    const seen = new Set<string>();
    const onEvent = (event: Seen) => {
      if (seen.has(event.jobId)) return;
      seen.add(event.jobId);
      if (++firsts === ids.length) allFirst();
    };
    const publishing = live
      ? allFirstSeen.then(() => {
          for (const id of ids) bus.publish("job", id, event(id, "RUNNING", 0.5));
          for (const id of ids) bus.publish("job", id, event(id, "SUCCEEDED", 1));
        })
      : Promise.resolve();
    // Live streams wait for the events, so the single ones must all be open at once to get their first states.
    const streams = shape === "many" ? 1 : live ? ids.length : CONCURRENCY;
    if (shape === "many") await followSse(url, key, MANY, { ids }, onEvent);
    else await inTurn(ids, streams, (id) => followSse(url, key, ONE, { id }, onEvent));
    await publishing;
    if (seen.size !== ids.length) throw new Error(`${seen.size} of ${ids.length} jobs seen`);
  }

  /** A window in which nothing is followed: the probe's own mark and read, the pause; taken off each window's reading. */
  async function idleWindow(): Promise<ProbeReading> {
    await processes.mark();
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    return (await processes.read()).gateway;
  }

  const results: Record<string, { one: Totals; many: Totals }> = {};
  const idle = emptyTotals();
  const loads: number[][] = [];
  try {
    for (const live of [false, true]) {
      const totals = { one: emptyTotals(), many: emptyTotals() };
      for (let index = 0; index < WARMUP + ROUNDS; index++) {
        const order: Array<"one" | "many"> = index % 2 === 0 ? ["one", "many"] : ["many", "one"];
        for (const shape of order) {
          const ids = live ? await queuedJobs() : await finishedJobs();
          await processes.mark();
          await follow(shape, ids, live);
          // The bus's unsubscriptions go out UNSUBSCRIBE_BATCH_MS after a watch ends: let them land in this window.
          await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
          const { gateway } = await processes.read();
          if (index >= WARMUP) add(totals[shape], gateway, ids.length);
        }
        const quiet = await idleWindow();
        if (index >= WARMUP) add(idle, quiet, 1);
      }
      results[live ? "live" : "finished"] = totals;
      loads.push((await import("node:os")).loadavg());
    }
  } finally {
    await processes.deleteProject(projectId).catch(() => {});
    await processes.close();
    await Promise.all([publisher.quit(), subscriber.quit(), db.$disconnect()]);
  }

  const idleCpuMs = idle.cpuMs / idle.jobs;
  const report = Object.fromEntries(
    Object.entries(results).map(([name, { one, many }]) => {
      const [single, shared] = [perJob(one, idleCpuMs), perJob(many, idleCpuMs)];
      return [name, { one: single, many: shared, cpuOneOverMany: round(single.cpuMs / shared.cpuMs, 2) }];
    }),
  );
  console.log(
    JSON.stringify({
      bench: "jobs-events",
      jobs: N,
      rounds: ROUNDS,
      warmup: WARMUP,
      concurrency: CONCURRENCY,
      idleWindowCpuMs: round(idleCpuMs),
      ...report,
      loadAfter: loads.map((load) => round(load[0]!, 2)),
    }),
  );
}
