import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WeaviateVectorStore } from "../../services/search/weaviate-vector-store.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { WEAVIATE_NODES } from "./cluster-env.ts";

/*
 * Tessera's vectors in a three-node Weaviate cluster (infra/weaviate/cluster.sh, started by the global setup) with
 * WEAVIATE_REPLICATION_FACTOR=2: each project's shard lives on two nodes. One of them is killed (SIGKILL): search
 * still finds every asset, and ingesting goes on. It comes back and catches up (async replication): with the other
 * copy's node killed in turn, it alone answers with everything, the asset ingested while it was down included.
 */

const run = promisify(execFile);
const cluster = (...args: string[]) => run("bash", ["infra/weaviate/cluster.sh", ...args], { timeout: 600_000 });

const INGEST = `mutation ($input: IngestInput!) { ingest(input: $input) { asset { id } job { id } } }`;
const SEARCH = `query ($input: SearchInput!) { search(input: $input) { hits { asset { id } } } }`;
const TEXTS = [
  "A red fox crossed the frozen river at night looking for food.",
  "The baker pulled warm loaves of rye bread from the stone oven.",
  "Storm clouds gathered over the mountains before the hikers reached the hut.",
  "The orchestra tuned their violins while the audience found their seats.",
];

const entry = WEAVIATE_NODES[0]!;
const collection = `ClusterTest${randomUUID().replaceAll("-", "").slice(0, 12)}`;
let t: TestApp;
let project: { key: string; projectId: string };
const stopped = new Set<number>();

async function stopNode(n: number) {
  stopped.add(n);
  await cluster("stop-node", String(n));
}
async function startNode(n: number) {
  await cluster("start-node", String(n));
  stopped.delete(n);
}

async function ingest(text: string) {
  const result = await t.graphql(INGEST, { input: { text } }, project.key);
  expect(result.errors).toBeUndefined();
  const { asset, job } = result.data.ingest;
  const finished = await eventually(async () => {
    const row = await t.app.db.job.findUnique({ where: { id: job.id } });
    return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
  }, 150_000);
  expect(finished.error).toBeNull();
  expect(finished.status).toBe("SUCCEEDED");
  return asset.id as string;
}

async function searchIds(text: string) {
  const result = await t.graphql(SEARCH, { input: { text, limit: 50 } }, project.key);
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return new Set<string>(result.data.search.hits.map((hit: { asset: { id: string } }) => hit.asset.id));
}

/** The nodes that hold a copy of the project's shard (a tenant's shard is named by it). */
async function holders(): Promise<number[]> {
  const response = await fetch(`${entry.url}/v1/nodes?output=verbose&collection=${collection}`);
  const body = (await response.json()) as { nodes: { name: string; shards: { class: string; name: string }[] | null }[] };
  return body.nodes
    .filter((node) => node.shards?.some((shard) => shard.class === collection && shard.name === project.projectId))
    .map((node) => Number(node.name.replace("node", "")))
    .sort();
}

/** Objects in each node's copy of the project's shard, as that node reports them. */
async function objectCounts(url: string): Promise<Map<number, number>> {
  const body = (await (await fetch(`${url}/v1/nodes?output=verbose&collection=${collection}`)).json()) as {
    nodes: { name: string; shards: { name: string; objectCount: number }[] | null }[];
  };
  const counts = new Map<number, number>();
  for (const node of body.nodes) {
    const shard = node.shards?.find((candidate) => candidate.name === project.projectId);
    if (shard) counts.set(Number(node.name.replace("node", "")), shard.objectCount);
  }
  return counts;
}

beforeAll(async () => {
  t = await startTestApp({
    worker: true,
    env: {
      WEAVIATE_URL: entry.url,
      WEAVIATE_GRPC_PORT: String(entry.grpcPort),
      WEAVIATE_COLLECTION: collection,
      WEAVIATE_REPLICATION_FACTOR: "2",
    },
  });
  project = await t.createProject();
});

afterAll(async () => {
  for (const n of [...stopped]) await startNode(n).catch(() => {});
  await fetch(`${entry.url}/v1/schema/${collection}`, { method: "DELETE" }).catch(() => {});
  await t?.close();
});

describe("Weaviate cluster, replication factor 2", () => {
  it("keeps searching with a node down, and the node catches up when it returns", async () => {
    const started = Date.now();
    const mark = (what: string) => console.log(`[weaviate-cluster] ${what} after ${Math.round((Date.now() - started) / 1000)} s`);
    const ids = [];
    for (const text of TEXTS) ids.push(await ingest(text));
    mark("ingested");
    const schema = (await (await fetch(`${entry.url}/v1/schema/${collection}`)).json()) as { replicationConfig: { factor: number; asyncEnabled: boolean } };
    expect(schema.replicationConfig).toMatchObject({ factor: 2, asyncEnabled: true });
    const copies = await holders();
    expect(copies).toHaveLength(2);
    const vectors = await t.app.vectorStore.count(project.projectId);
    expect(await searchIds("animals, food and weather")).toEqual(new Set(ids));

    // Kill a node holding a copy (not the one Tessera talks to: in production that address is a load balancer).
    const down = copies.find((n) => n !== entry.n)!;
    const other = copies.find((n) => n !== down)!;
    await stopNode(down);
    mark(`node ${down} stopped`);
    // The dead node may take a few seconds to be marked down; reads go to the live copy meanwhile.
    expect(await eventually(async () => (await searchIds("animals, food and weather").catch(() => new Set())).size === ids.length && true, 60_000)).toBe(true);
    expect(await searchIds("animals, food and weather")).toEqual(new Set(ids));

    // Writes go on with one copy (consistency ONE).
    const late = await ingest("The lighthouse keeper climbed the stairs to light the lamp before the storm.");
    ids.push(late);
    expect(await searchIds("animals, food and weather")).toEqual(new Set(ids));

    // The node returns; with the other copy's node killed, it alone must answer with everything.
    mark("late ingest found");
    await startNode(down);
    mark(`node ${down} started again`);
    const returned = WEAVIATE_NODES[down - 1]!;
    const direct = await WeaviateVectorStore.connect({ url: returned.url, grpcPort: returned.grpcPort, collection, consistencyLevel: "ONE" });
    try {
      // Async replication compares the copies' hash trees every few seconds and sends what one lacks: wait until the
      // returned node's copy holds as many objects as the other's (more than before the outage).
      await eventually(async () => {
        const counts = await objectCounts(returned.url);
        return counts.get(down) === counts.get(other) && (counts.get(down) ?? 0) > vectors;
      }, 180_000);
      mark("caught up");
      await stopNode(other);
      // Only the returned node holds the project now: every asset, the late one included, is there.
      for (const id of ids) {
        expect(await eventually(async () => (await direct.count(project.projectId, { assetId: id }).catch(() => 0)) > 0, 60_000)).toBe(true);
      }
    } finally {
      await direct.close();
      if (stopped.has(other)) await startNode(other);
    }
    // Its own waits add up past the file's 180 s: the catch-up alone may take up to 180 s, a node's restart a minute.
  }, 480_000);
});
