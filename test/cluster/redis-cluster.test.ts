import { randomUUID } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_REDIS_URL } from "../support/test-env.ts";
import { reconcileOnce } from "../../services/worker/reconciler.ts";
import { REDIS_CLUSTER_NODES } from "./cluster-env.ts";

/*
 * Tessera on a real Redis Cluster of three masters (infra/redis-cluster/redis-cluster.sh, started by the global
 * setup): REDIS_CLUSTER_NODES makes every connection an ioredis Cluster, and QUEUE_PREFIX is a hash tag so that
 * BullMQ's Lua scripts, the rate limiters, the subscription counter and the reconciler's keys each stay in one slot.
 * The ingest path (gateway -> BullMQ -> worker -> index -> search) and a workflow run (with its events over pub/sub
 * to an SSE subscription) run through it.
 */

const INGEST = `mutation ($input: IngestInput!) { ingest(input: $input) { asset { id } job { id } } }`;
const SEARCH = `query ($input: SearchInput!) { search(input: $input) { hits { asset { id } } } }`;
const PUBLISH = `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`;
const RUN = `mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`;
const RESUME = `mutation ($id: ID!, $stepId: String!, $input: JSON) { resumeRun(id: $id, stepId: $stepId, input: $input) { id } }`;

let t: TestApp;
let project: { key: string; projectId: string };
const prefix = `{test-${randomUUID().slice(0, 8)}}`;

beforeAll(async () => {
  t = await startTestApp({ worker: true, env: { REDIS_CLUSTER_NODES, QUEUE_PREFIX: prefix } });
  project = await t.createProject();
});

afterAll(async () => {
  await t?.close();
});

/** Every key of this deployment, read from each master of the cluster, with the node that holds it. */
async function keysOnCluster() {
  const found: { key: string; node: string }[] = [];
  for (const node of (t.app.redis as unknown as Cluster).nodes("master")) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      for (const key of keys) found.push({ key, node: `${node.options.host}:${node.options.port}` });
    } while (cursor !== "0");
  }
  return found;
}

describe("Tessera on a Redis Cluster", () => {
  it("connects to the cluster, not to the single Redis", () => {
    expect(t.app.redis).toBeInstanceOf(Cluster);
    expect(t.app.redisRequests).toBeInstanceOf(Cluster);
    expect(t.app.redisSubscriber).toBeInstanceOf(Cluster);
  });

  it("ingests a text through BullMQ on the cluster, and search finds it", async () => {
    const text = `The ferry to the island leaves at dawn when the fog lifts over the harbour ${randomUUID()}.`;
    const result = await t.graphql(INGEST, { input: { text } }, project.key);
    expect(result.errors).toBeUndefined();
    const { asset, job } = result.data.ingest;
    const finished = await eventually(async () => {
      const row = await t.app.db.job.findUnique({ where: { id: job.id } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 150_000);
    expect(finished.error).toBeNull();
    expect(finished.status).toBe("SUCCEEDED");
    const search = await t.graphql(SEARCH, { input: { text: "a boat crossing to an island in the morning" } }, project.key);
    expect(search.errors).toBeUndefined();
    expect(search.data.search.hits.map((hit: { asset: { id: string } }) => hit.asset.id)).toContain(asset.id);
  });

  it("runs a workflow that waits, its events reaching an SSE subscription through the cluster's pub/sub", async () => {
    const slug = `cluster-${randomUUID().slice(0, 8)}`;
    const definition = `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  count: { type: integer }
steps:
  - id: approve
    uses: wait
    with: { prompt: "ok?" }
  - id: sum
    uses: transform
    with: { total: "\${{ inputs.count + steps.approve.output.extra }}" }
outputs:
  total: "\${{ steps.sum.output.total }}"
`;
    const published = await t.graphql(PUBLISH, { d: definition }, project.key);
    expect(published.errors).toBeUndefined();
    const started = await t.graphql(RUN, { slug, input: { count: 40 } }, project.key);
    expect(started.errors).toBeUndefined();
    const runId = started.data.runWorkflow.id as string;
    await eventually(async () => (await t.app.db.run.findUnique({ where: { id: runId } }))?.status === "WAITING", 90_000);

    // The subscription is open (it answers the run's status first) before the run is resumed, so what follows comes
    // from the worker over pub/sub.
    const controller = new AbortController();
    const response = await fetch(t.url, {
      method: "POST",
      signal: controller.signal,
      headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${project.key}` },
      body: JSON.stringify({ query: `subscription ($id: ID!) { runEvents(id: $id) { stepId stepStatus runStatus } }`, variables: { id: runId } }),
    });
    expect(response.status).toBe(200);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const events = () =>
      text
        .split("\n\n")
        .filter((block) => block.includes("event: next"))
        .map((block) => JSON.parse(block.split("\n").find((line) => line.startsWith("data: "))!.slice(6)).data.runEvents);
    while (events().length === 0) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(events()[0].runStatus).toBe("WAITING");
    // The open subscription is counted in the cluster (a Lua script on one key), until it ends.
    expect(await t.app.redis.zcard(`${prefix}:subscriptions:${project.projectId}`)).toBe(1);

    const resumed = await t.graphql(RESUME, { id: runId, stepId: "approve", input: { extra: 2 } }, project.key);
    expect(resumed.errors).toBeUndefined();
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    controller.abort();
    const seen = events();
    // The transform `sum` finishes in the same advance as the run: its event comes over the cluster's pub/sub, and
    // before the run's end (sharded pub/sub: one node carries a run's events, in order).
    const sumFinished = seen.findIndex((event) => event.stepId === "sum" && event.stepStatus === "SUCCEEDED");
    expect(sumFinished).toBeGreaterThan(0);
    expect(sumFinished).toBeLessThan(seen.length - 1);
    expect(seen.at(-1).runStatus).toBe("SUCCEEDED");
    const run = await t.app.db.run.findUniqueOrThrow({ where: { id: runId } });
    expect(run.output).toEqual({ total: 42 });
  });

  it("delivers one topic's events in the order they were published, whichever connection node sent them", async () => {
    const runId = randomUUID();
    const received: number[] = [];
    const events = t.app.events.subscribe("run", runId)[Symbol.asyncIterator]();
    const first = events.next();
    await t.app.events.whenSubscribed("run", runId);
    const count = 300;
    for (let i = 0; i < count; i++) t.app.events.publish("run", runId, { runId, type: "STEP_LOG", message: String(i), at: new Date().toISOString() });
    received.push(Number((await first).value.message));
    while (received.length < count) received.push(Number((await events.next()).value.message));
    await events.return?.();
    expect(received).toEqual(Array.from({ length: count }, (_, i) => i));
  });

  it("the reconciler re-enqueues an ingest whose job was lost, through the cluster", async () => {
    const queue = t.app.queues.queue("ingest");
    await queue.pause();
    let jobId: string;
    let assetId: string;
    try {
      const result = await t.graphql(INGEST, { input: { text: `a row committed, then its job lost ${randomUUID()}` } }, project.key);
      expect(result.errors).toBeUndefined();
      ({ asset: { id: assetId }, job: { id: jobId } } = result.data.ingest);
      expect(await queue.remove(jobId)).toBe(1);
    } finally {
      await queue.resume();
    }
    const report = await reconcileOnce(t.app, { graceMs: 0, blobGraceMs: 3_600_000, maxRequeues: 3, projectIds: [project.projectId] });
    expect(report.jobsRequeued).toBe(1);
    // Its count of requeues is a hash in the cluster, beside the queues.
    expect(await t.app.redis.hget(`${prefix}:reconciler:requeues`, jobId)).toBe("1");
    const asset = await eventually(async () => {
      const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: assetId } });
      return row.status === "READY" || row.status === "FAILED" ? row : null;
    }, 150_000);
    expect(asset.status).toBe("READY");
  });

  it("keeps every key in one slot of the cluster, and none on the single Redis", async () => {
    // A request now, so the rate limiter's short-lived counters exist while the keys are listed.
    expect((await t.graphql(`{ __typename }`, {}, project.key)).errors).toBeUndefined();
    const keys = await keysOnCluster();
    const names = keys.map(({ key }) => key);
    // BullMQ's queues and the rate limiters (every request above counted).
    expect(names.some((key) => key.startsWith(`${prefix}:ingest:`))).toBe(true);
    expect(names.some((key) => key.startsWith(`${prefix}:limits:project:`))).toBe(true);
    expect(new Set(keys.map(({ node }) => node)).size).toBe(1);
    const single = new Redis(TEST_REDIS_URL);
    try {
      expect(await single.keys(`${prefix}*`)).toEqual([]);
    } finally {
      single.disconnect();
    }
  });
});

describe("configuration", () => {
  it("refuses a queue prefix without a hash tag in cluster mode, naming the variable", async () => {
    const { loadConfig } = await import("../../services/core/config.ts");
    expect(() => loadConfig({ REDIS_CLUSTER_NODES, QUEUE_PREFIX: "tessera" })).toThrow(/QUEUE_PREFIX: must be a hash tag/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: "not a node" })).toThrow(/REDIS_CLUSTER_NODES/);
    expect(loadConfig({ REDIS_CLUSTER_NODES, QUEUE_PREFIX: "{tessera}" }).REDIS_CLUSTER_NODES).toHaveLength(3);
  });
});
