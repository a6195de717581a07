/**
 * `npm run bench -- search`: the vector stores and the search path, each
 * against the engine underneath, in one run, on BENCH_SEARCH_VECTORS seeded
 * random unit 512-d vectors (default 100000) held as one project's assets.
 *
 * 1. recall@10 of each store's nearVector against exact brute force over
 *    BENCH_SEARCH_QUERIES random queries (default 100): Weaviate as shipped
 *    (flat index), the embedded store, and with BENCH_SEARCH_HNSW=1 Weaviate's
 *    HNSW index too (BENCH_SEARCH_EF_SWEEP="500,1000" also measures it at
 *    those search widths).
 * 2. `search` through GraphQL (an asset query) against the same query sent
 *    straight to the store (vectorsOf + nearVector), sequentially, in
 *    alternating blocks: queries/s and p50/p99. On Weaviate over the whole
 *    project (100 queries), and per store on a small project of
 *    BENCH_SEARCH_GRAPHQL_ASSETS assets (default 2000, BENCH_SEARCH_GRAPHQL_QUERIES
 *    queries), where the store answers in milliseconds and the gateway's fixed
 *    cost shows. Each side's store calls per query are counted and reported,
 *    and this process's CPU per query; BENCH_SEARCH_PROFILE=<file> writes a
 *    CPU profile of as many GraphQL queries again on the small project, and
 *    one of as many store-side queries (`-store` before the extension).
 * 3. The gateway alone: the same GraphQL search with the store stubbed (gatewayAlone), CPU, SQL statements and
 *    Redis commands per request (with BENCH_SEARCH_PROFILE, a profile of as many requests again: `-alone`);
 *    and the framework's floor (bareYoga): the same query answered from memory by a bare graphql-yoga.
 * 4. Ingest: vectors/s into Weaviate through the worker's index stage
 *    (WORKER_CONCURRENCY jobs at once, BENCH_SEARCH_INGEST_ASSETS assets x 16
 *    chunks) against weaviate-client's batch import (insertMany) alone.
 *
 * Needs PostgreSQL, Redis and Weaviate (WEAVIATE_URL, default http://127.0.0.1:8080);
 * BENCH_SEARCH_STORES=embedded runs the embedded store's parts alone.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import { Session } from "node:inspector/promises";
import os from "node:os";
import path from "node:path";
import weaviate, { reconfigure } from "weaviate-client";
import { createAppContext, type AppContext } from "../services/app/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { sql } from "../services/core/database.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import type { VectorRecord } from "../services/search/vector-store.ts";
import type { IngestState } from "../services/worker/ingest/ingest-stage.ts";
import { indexStage } from "../services/worker/ingest/index-stage.ts";
import type { JobHandlerContext } from "../services/worker/job-handler.ts";
import { serveBareYoga } from "./fixtures/bare-yoga.ts";
import { sent } from "./fixtures/sent-commands.ts";

const DIMENSIONS = 512;
const K = 10;
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const log = (message: string) => process.stderr.write(`[bench search] ${message}\n`);

/** Seeded normal vectors, normalised: reproducible data for every adapter. */
function randomUnitVectors(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  const data = new Float32Array(count * DIMENSIONS);
  for (let row = 0; row < count; row++) {
    let norm = 0;
    for (let i = 0; i < DIMENSIONS; i++) {
      const value = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
      data[row * DIMENSIONS + i] = value;
      norm += value * value;
    }
    norm = Math.sqrt(norm);
    for (let i = 0; i < DIMENSIONS; i++) data[row * DIMENSIONS + i]! /= norm;
  }
  return data;
}

const rowOf = (data: Float32Array, index: number) => data.subarray(index * DIMENSIONS, (index + 1) * DIMENSIONS);

/** Exact top-k by cosine (the vectors are unit length, so the dot product). */
function bruteForceTopK(data: Float32Array, count: number, query: Float32Array): number[] {
  const best: Array<[number, number]> = [];
  for (let row = 0; row < count; row++) {
    let dot = 0;
    const offset = row * DIMENSIONS;
    for (let i = 0; i < DIMENSIONS; i++) dot += data[offset + i]! * query[i]!;
    if (best.length < K || dot > best[best.length - 1]![1]) {
      best.push([row, dot]);
      best.sort((a, b) => b[1] - a[1]);
      if (best.length > K) best.pop();
    }
  }
  return best.map(([row]) => row);
}

function percentile(samples: number[], p: number) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (value: number, digits = 2) => Number(value.toFixed(digits));

type Timing = { qps: number; p50Ms: number; p99Ms: number };

/** Runs `run` for indexes 0..count-1 one after another, adding each latency to `samples`; returns the seconds taken. */
async function timeEachInto(samples: number[], count: number, run: (index: number) => Promise<void>) {
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    const begin = performance.now();
    await run(index);
    samples.push(performance.now() - begin);
  }
  return (performance.now() - started) / 1000;
}

function summarize(samples: number[], seconds: number): Timing {
  return { qps: round(samples.length / seconds, 1), p50Ms: round(percentile(samples, 50)), p99Ms: round(percentile(samples, 99)) };
}

async function timeEach(count: number, run: (index: number) => Promise<void>): Promise<Timing> {
  const samples: number[] = [];
  return summarize(samples, await timeEachInto(samples, count, run));
}

type BenchData = { data: Float32Array; count: number; queries: Float32Array; queryCount: number; truth: number[][] };

/** A project with `count` READY text assets, each with one vector of `data` in `space`: the store as search sees it. */
async function seedProject(app: AppContext, data: Float32Array, count: number, space: string) {
  const { key, project } = await createApiKey(app.db, `bench-search-${randomUUID()}`);
  const assetIds = Array.from({ length: count }, () => randomUUID());
  const slice = 10_000; // bounds the rows and record objects held at once
  const started = performance.now();
  for (let start = 0; start < count; start += slice) {
    const rows = assetIds.slice(start, start + slice);
    await app.db.asset.createMany({
      data: rows.map((id, offset) => ({
        id, projectId: project.id, modality: "TEXT" as const, sha256: `${start + offset}`.padStart(64, "0"), mimeType: "text/plain", byteSize: 1, source: "text", status: "READY" as const,
      })),
    });
    const records: VectorRecord[] = rows.map((assetId, offset) => ({
      assetId, space, chunk: 0, vector: rowOf(data, start + offset), model: "random", modality: "TEXT", text: `asset ${start + offset}`, tags: [], metadata: {},
    }));
    await app.vectorStore.upsert(project.id, records);
    log(`  ${app.vectorStore.kind}: ${Math.min(count, start + slice)}/${count} vectors imported`);
  }
  const importVectorsPerSec = round(count / ((performance.now() - started) / 1000), 0);
  return { key, project, assetIds, importVectorsPerSec };
}

async function dropProject(app: AppContext, projectId: string) {
  await app.vectorStore.deleteProject(projectId);
  await app.db.project.delete({ where: { id: projectId } });
}

/** recall@10 of the store's nearVector against the exact top 10, and its latency. */
async function measureRecall(app: AppContext, projectId: string, assetIds: string[], bench: BenchData) {
  let found = 0;
  const timing = await timeEach(bench.queryCount, async (index) => {
    const hits = await app.vectorStore.nearVector(projectId, { space: "bench-recall", vector: rowOf(bench.queries, index), limit: K });
    const expected = new Set(bench.truth[index]!.map((row) => assetIds[row]));
    found += hits.filter((hit) => expected.has(hit.assetId)).length;
  });
  return { recallAt10: round(found / (bench.queryCount * K), 4), nearVector: timing };
}

/** Which store methods a block of queries called, and how often: both sides must make the same store calls. */
function countingStore(app: AppContext) {
  const counts = new Map<string, number>();
  // Wall time inside the store's calls (they run one after another in both sides' queries).
  let storeMs = 0;
  const inner = app.vectorStore;
  const counting = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function" || typeof property !== "string") return value;
      return (...args: unknown[]) => {
        counts.set(property, (counts.get(property) ?? 0) + 1);
        const began = performance.now();
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.finally(() => (storeMs += performance.now() - began));
      };
    },
  });
  app.vectorStore = counting;
  return {
    /** Calls per query since the last take, by method; and the count reset. */
    take(queries: number) {
      const perQuery = Object.fromEntries([...counts].map(([method, count]) => [method, round(count / queries, 2)]));
      counts.clear();
      return perQuery;
    },
    /** Milliseconds spent inside store calls since the last call; and that reset. */
    takeMs() {
      const taken = storeMs;
      storeMs = 0;
      return taken;
    },
    restore: () => (app.vectorStore = inner),
  };
}

/**
 * A JSON POST over one kept-alive connection with node:http: a client as lean as the store side's (which has
 * none). The global fetch (undici, WHATWG streams) cost this process ~0.8 ms of CPU per request more, counted
 * against GraphQL though no gateway runs it (bench/README.md, search).
 */
function jsonClient(url: string) {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (headers: Record<string, string>, body: string) =>
    new Promise<unknown>((resolve, reject) => {
      const request = http.request(
        { host: target.hostname, port: target.port, path: target.pathname, method: "POST", agent, headers: { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () => {
            try {
              resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
            } catch (error) {
              reject(error);
            }
          });
          response.on("error", reject);
        },
      );
      request.on("error", reject);
      request.end(body);
    });
  return { post, close: () => agent.destroy() };
}

/** A CPU profile (node:inspector) of this process over `work` only, written to `file` (open it in Chrome's DevTools). */
async function profiled<T>(file: string, work: () => Promise<T>, what = "the GraphQL blocks"): Promise<T> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 250 });
  await session.post("Profiler.start");
  try {
    return await work();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    await fs.writeFile(file, JSON.stringify(profile));
    session.disconnect();
    log(`  CPU profile of ${what}: ${file}`);
  }
}

/** The schema of the bare-yoga floors: the fields the bench's query reads, nothing else. */
const FLOOR_TYPE_DEFS = `type Asset { id: ID! modality: String! } type Hit { score: Float! snippet: String asset: Asset! } type Result { hits: [Hit!]! }
  input SearchInput { assetId: ID! limit: Int! } type Query { search(input: SearchInput!): Result! }`;

/** A bare graphql-yoga on node:http whose one resolver is `search`; closes with the server. */
function bareYoga(search: (input: { assetId: string; limit: number }) => unknown) {
  return serveBareYoga(FLOOR_TYPE_DEFS, { Query: { search: (_root: unknown, args: { input: { assetId: string; limit: number } }) => search(args.input) } });
}

/**
 * The floor of any GraphQL search on this stack: a bare graphql-yoga (no key, no rate count, no plugin) making the
 * same two store calls, then the one statement no project-scoped answer can skip (the hits' rows, by id and
 * project, so a deleted asset is not shown), over the same client.
 */
function floorSearch(app: AppContext, projectId: string) {
  return bareYoga(async ({ assetId, limit }) => {
    const [stored] = await app.vectorStore.vectorsOf(projectId, assetId);
    const candidates = await app.vectorStore.nearVector(projectId, { space: stored!.space, vector: stored!.vector, limit: limit * 4, filter: { excludeAssetIds: [assetId] } });
    const top = candidates.slice(0, limit);
    const rows = await sql<{ id: string; modality: string }>(app.db, `SELECT id, modality FROM "Asset" WHERE id = ANY($1) AND "projectId" = $2`, [top.map((hit) => hit.assetId), projectId], "bench_floor_rows");
    const byId = new Map(rows.map((row) => [row.id, row]));
    return { hits: top.flatMap((hit) => (byId.has(hit.assetId) ? [{ score: hit.score, snippet: hit.text, asset: byId.get(hit.assetId) }] : [])) };
  });
}

/**
 * `search` through GraphQL (an asset query: its stored vectors, `nearVector` of 40 candidates excluding it, the
 * hits' asset rows) against the same store calls made directly, sequentially, over the project's assets, and against
 * the floor of the stack (floorSearch: a bare yoga, the same calls, the rows' statement). Every side's store calls
 * are counted: GraphQL must make no more than the direct side.
 */
async function graphqlAgainstStore(app: AppContext, key: string, projectId: string, assetIds: string[], queryCount: number, profileFile?: string) {
  const calls = countingStore(app);
  const gateway = createGateway(app);
  const address = await gateway.listen(0, "127.0.0.1");
  const client = jsonClient(`http://127.0.0.1:${address.port}/graphql`);
  const floor = await floorSearch(app, projectId);
  const floorClient = jsonClient(floor.url);
  try {
    const pick = (index: number) => assetIds[(index * 7919) % assetIds.length]!;
    const viaStore = async (index: number) => {
      const assetId = pick(index);
      const [stored] = await app.vectorStore.vectorsOf(projectId, assetId);
      await app.vectorStore.nearVector(projectId, { space: stored!.space, vector: stored!.vector, limit: K * 4, filter: { excludeAssetIds: [assetId] } });
    };
    const query = `query($id: ID!) { search(input: { assetId: $id, limit: ${K} }) { hits { score snippet asset { id modality } } } }`;
    const headers = { authorization: `Bearer ${key}` };
    const viaGraphql = async (index: number) => {
      const result = (await client.post(headers, JSON.stringify({ query, variables: { id: pick(index) } }))) as { errors?: unknown[]; data?: { search: { hits: unknown[] } } };
      if (result.errors || result.data?.search.hits.length !== K) throw new Error(`search failed: ${JSON.stringify(result.errors ?? result.data)}`);
    };
    const viaFloor = async (index: number) => {
      const result = (await floorClient.post({}, JSON.stringify({ query, variables: { id: pick(index) } }))) as { errors?: unknown[]; data?: { search: { hits: unknown[] } } };
      if (result.errors || result.data?.search.hits.length !== K) throw new Error(`the bare-yoga floor failed: ${JSON.stringify(result.errors ?? result.data)}`);
    };
    // Warm-up (BENCH_SEARCH_GRAPHQL_WARMUP, default 20 of each side): code not yet optimised costs more CPU per query.
    const warmUp = env("BENCH_SEARCH_GRAPHQL_WARMUP", 20);
    for (let index = 0; index < warmUp; index++) await Promise.all([viaStore(index), viaGraphql(index), viaFloor(index)]);
    calls.take(1);
    calls.takeMs();
    // Alternating blocks, so a change in machine load during the run falls on both sides alike.
    const samples = { store: [] as number[], graphql: [] as number[], floor: [] as number[] };
    const seconds = { store: 0, graphql: 0, floor: 0 };
    const storeCalls = { store: new Map<string, number>(), graphql: new Map<string, number>(), floor: new Map<string, number>() };
    // This process's CPU per query (client, gateway and store client alike): steadier than latency on a loaded machine.
    const cpuMicros = { store: 0, graphql: 0, floor: 0 };
    // The main thread's part of it (process.threadCpuUsage); the rest is V8's helper threads (GC, optimising
    // compiles) and libuv's pool.
    const mainCpuMicros = { store: 0, graphql: 0, floor: 0 };
    const sentBy = { store: { sql: 0, redis: 0 }, graphql: { sql: 0, redis: 0 }, floor: { sql: 0, redis: 0 } };
    // Each side's mean latency and the part of it spent in the store's calls: the rest is what GraphQL adds around them.
    const wallMs = { store: 0, graphql: 0, floor: 0 };
    const inStoreMs = { store: 0, graphql: 0, floor: 0 };
    const withCpu = async (side: "store" | "graphql" | "floor", work: () => Promise<number>) => {
      const before = process.cpuUsage();
      const mainBefore = process.threadCpuUsage();
      const sentBefore = { ...sent };
      calls.takeMs();
      const taken = await work();
      inStoreMs[side] += calls.takeMs();
      wallMs[side] += taken * 1000;
      const used = process.cpuUsage(before);
      cpuMicros[side] += used.user + used.system;
      const usedMain = process.threadCpuUsage(mainBefore);
      mainCpuMicros[side] += usedMain.user + usedMain.system;
      sentBy[side].sql += sent.sql - sentBefore.sql;
      sentBy[side].redis += sent.redis - sentBefore.redis;
      for (const [method, count] of Object.entries(calls.take(1))) storeCalls[side].set(method, (storeCalls[side].get(method) ?? 0) + count);
      return taken;
    };
    const block = 25;
    for (let first = 0; first < queryCount; first += block) {
      const count = Math.min(block, queryCount - first);
      seconds.store += await withCpu("store", () => timeEachInto(samples.store, count, (index) => viaStore(first + index)));
      seconds.graphql += await withCpu("graphql", () => timeEachInto(samples.graphql, count, (index) => viaGraphql(first + index)));
      seconds.floor += await withCpu("floor", () => timeEachInto(samples.floor, count, (index) => viaFloor(first + index)));
    }
    // The profile is of as many GraphQL queries again, after the measured blocks, which it would slow.
    if (profileFile) await profiled(profileFile, () => timeEachInto([], queryCount, viaGraphql));
    // And of as many store-side queries, to compare the store client's own share on both sides.
    if (profileFile) await profiled(profileFile.replace(/(\.cpuprofile)?$/, "-store.cpuprofile"), () => timeEachInto([], queryCount, viaStore), "the store-side queries");
    const perQuery = (counts: Map<string, number>) => Object.fromEntries([...counts].map(([method, count]) => [method, round(count / queryCount, 2)]));
    /** One side's figures per query; `sentPerQuery` for the sides that send statements or commands of their own. */
    const figures = (side: "store" | "graphql" | "floor") => ({
      ...summarize(samples[side], seconds[side]),
      meanMs: round(wallMs[side] / queryCount),
      inStoreMeanMs: round(inStoreMs[side] / queryCount),
      cpuMsPerQuery: round(cpuMicros[side] / 1000 / queryCount),
      mainThreadCpuMsPerQuery: round(mainCpuMicros[side] / 1000 / queryCount),
      storeCallsPerQuery: perQuery(storeCalls[side]),
      ...(side === "store" ? {} : { sentPerQuery: { sql: round(sentBy[side].sql / queryCount, 2), redis: round(sentBy[side].redis / queryCount, 2) } }),
    });
    const store = figures("store");
    const graphql = figures("graphql");
    const bareYogaFloor = figures("floor");
    return {
      assets: assetIds.length,
      queries: queryCount,
      store,
      graphql,
      bareYogaFloor,
      p50Ratio: round(graphql.p50Ms / store.p50Ms, 3),
      p50Overhead: round(graphql.p50Ms / store.p50Ms - 1, 3),
      floorP50Ratio: round(bareYogaFloor.p50Ms / store.p50Ms, 3),
      loadavg: os.loadavg().map((value) => round(value)),
    };
  } finally {
    client.close();
    floorClient.close();
    await floor.close();
    await gateway.close();
    calls.restore();
  }
}

/** One store setting over the same data: import, recall, optionally an ef sweep (HNSW) and GraphQL against the store. */
async function storeBench(
  app: AppContext,
  bench: BenchData,
  options: { graphqlQueries: number; setEf?: (ef: number) => Promise<void>; efValues?: number[] },
) {
  const { key, project, assetIds, importVectorsPerSec } = await seedProject(app, bench.data, bench.count, "bench-recall");
  try {
    const recall = await measureRecall(app, project.id, assetIds, bench);
    log(`  ${app.vectorStore.kind}: recall@10 ${recall.recallAt10}, p50 ${recall.nearVector.p50Ms} ms`);
    const efSweep: Array<{ ef: number; recallAt10: number; p50Ms: number }> = [];
    for (const ef of options.efValues ?? []) {
      await options.setEf!(ef);
      const result = await measureRecall(app, project.id, assetIds, bench);
      efSweep.push({ ef, recallAt10: result.recallAt10, p50Ms: result.nearVector.p50Ms });
      log(`  ef ${ef}: recall@10 ${result.recallAt10}, p50 ${result.nearVector.p50Ms} ms`);
    }
    const graphql = options.graphqlQueries > 0 ? await graphqlAgainstStore(app, key, project.id, assetIds, options.graphqlQueries) : undefined;
    return { ...recall, importVectorsPerSec, ...(efSweep.length ? { efSweep } : {}), ...(graphql ? { graphql } : {}) };
  } finally {
    await dropProject(app, project.id);
  }
}

/** GraphQL against the store on a small project, where the store answers in a few ms: the gateway's fixed cost. */
async function smallProjectGraphql(app: AppContext, assetCount: number, queryCount: number) {
  const { key, project, assetIds } = await seedProject(app, randomUnitVectors(assetCount, 42), assetCount, "bench-graphql");
  const profile = process.env.BENCH_SEARCH_PROFILE;
  try {
    return await graphqlAgainstStore(app, key, project.id, assetIds, queryCount, profile && `${profile.replace(/\.cpuprofile$/, "")}-${app.vectorStore.kind}.cpuprofile`);
  } finally {
    await dropProject(app, project.id);
  }
}

/**
 * The gateway alone: `search` through GraphQL with the vector store replaced by a stub that answers at once (the
 * asset's one stored vector; 40 candidates), so what is measured is HTTP (this process's client included), yoga,
 * the key and rate checks, the fusion, the hits' rows and the response: this process's CPU per request, steadier
 * than any latency ratio on a loaded machine, and what every store pays on top of its own calls.
 */
async function gatewayAlone(app: AppContext, requests: number) {
  const { key, project } = await createApiKey(app.db, `bench-gateway-${randomUUID()}`);
  const ids = Array.from({ length: 41 }, () => randomUUID());
  await app.db.asset.createMany({
    data: ids.map((id, row) => ({ id, projectId: project.id, modality: "TEXT" as const, sha256: `${row}`.padStart(64, "0"), mimeType: "text/plain", byteSize: 1, source: "text", status: "READY" as const })),
  });
  const vector = randomUnitVectors(1, 3);
  const inner = app.vectorStore;
  // BENCH_SEARCH_STUB_WAIT_MS: each stubbed call answers after that long (a timer), as a real store's round trip
  // leaves the process idle: what the gateway's CPU per request does when its work is split by waits.
  const waitMs = env("BENCH_SEARCH_STUB_WAIT_MS", 0);
  const waited = async <T>(value: T) => (waitMs > 0 ? new Promise<T>((resolve) => setTimeout(() => resolve(value), waitMs)) : value);
  const stub: Partial<typeof inner> = {
    vectorsOf: async () => waited([{ space: "bench-gateway", chunk: 0, model: "random", text: "asset 0", vector }]),
    nearVector: async (_projectId, query) =>
      waited(ids.slice(1, 1 + Math.min(40, query.limit)).map((assetId, rank) => ({ assetId, space: "bench-gateway", chunk: 0, modality: "TEXT" as const, text: `asset ${rank + 1}`, score: 1 - rank / 100 }))),
  };
  app.vectorStore = new Proxy(inner, { get: (target, property, receiver) => (property in stub ? stub[property as keyof typeof stub] : Reflect.get(target, property, receiver)) });
  const gateway = createGateway(app);
  const address = await gateway.listen(0, "127.0.0.1");
  const client = jsonClient(`http://127.0.0.1:${address.port}/graphql`);
  const body = JSON.stringify({ query: `query($id: ID!) { search(input: { assetId: $id, limit: ${K} }) { hits { score snippet asset { id modality } } } }`, variables: { id: ids[0] } });
  const headers = { authorization: `Bearer ${key}` };
  const ask = async () => {
    const result = (await client.post(headers, body)) as { errors?: unknown[]; data?: { search: { hits: unknown[] } } };
    if (result.errors || result.data?.search.hits.length !== K) throw new Error(`search failed: ${JSON.stringify(result.errors ?? result.data)}`);
  };
  try {
    for (let index = 0; index < env("BENCH_SEARCH_GATEWAY_WARMUP", 200); index++) await ask(); // warm-up
    const before = process.cpuUsage();
    const mainBefore = process.threadCpuUsage();
    const sentBefore = { ...sent };
    const samples: number[] = [];
    const seconds = await timeEachInto(samples, requests, ask);
    const used = process.cpuUsage(before);
    const usedMain = process.threadCpuUsage(mainBefore);
    const sentPerRequest = { sql: round((sent.sql - sentBefore.sql) / requests, 2), redis: round((sent.redis - sentBefore.redis) / requests, 2) };
    const profile = process.env.BENCH_SEARCH_PROFILE;
    if (profile) await profiled(`${profile.replace(/\.cpuprofile$/, "")}-alone.cpuprofile`, () => timeEachInto([], requests, ask), "the gateway alone");
    return { requests, stubWaitMs: waitMs, ...summarize(samples, seconds), cpuMsPerRequest: round((used.user + used.system) / 1000 / requests, 3), mainThreadCpuMsPerRequest: round((usedMain.user + usedMain.system) / 1000 / requests, 3), sentPerRequest, loadavg: os.loadavg().map((value) => round(value)) };
  } finally {
    client.close();
    await gateway.close();
    app.vectorStore = inner;
    await app.db.project.delete({ where: { id: project.id } });
  }
}

/**
 * The framework's floor: the same query and answer through a bare graphql-yoga on node:http (the versions the
 * gateway runs, no plugin, no key, no rate count, no statement, hits from memory), over the same client. No
 * `search` through this stack can cost less: what the gateway adds over it is the gateway's own.
 */
async function yogaFloor(requests: number) {
  const hits = Array.from({ length: K }, (_, rank) => ({ score: 1 - rank / 100, snippet: `asset ${rank + 1}`, asset: { id: randomUUID(), modality: "TEXT" } }));
  const server = await bareYoga(() => ({ hits }));
  const client = jsonClient(server.url);
  const body = JSON.stringify({ query: `query($id: ID!) { search(input: { assetId: $id, limit: ${K} }) { hits { score snippet asset { id modality } } } }`, variables: { id: randomUUID() } });
  const ask = async () => {
    const result = (await client.post({}, body)) as { errors?: unknown[]; data?: { search: { hits: unknown[] } } };
    if (result.errors || result.data?.search.hits.length !== K) throw new Error(`bare yoga failed: ${JSON.stringify(result.errors ?? result.data)}`);
  };
  try {
    for (let index = 0; index < env("BENCH_SEARCH_GATEWAY_WARMUP", 200); index++) await ask();
    const before = process.cpuUsage();
    const mainBefore = process.threadCpuUsage();
    const samples: number[] = [];
    const seconds = await timeEachInto(samples, requests, ask);
    const used = process.cpuUsage(before);
    const usedMain = process.threadCpuUsage(mainBefore);
    return { requests, ...summarize(samples, seconds), cpuMsPerRequest: round((used.user + used.system) / 1000 / requests, 3), mainThreadCpuMsPerRequest: round((usedMain.user + usedMain.system) / 1000 / requests, 3), loadavg: os.loadavg().map((value) => round(value)) };
  } finally {
    client.close();
    await server.close();
  }
}

async function ingestBench(app: AppContext, weaviateUrl: string, grpcPort: number, assetCount: number, chunks: number) {
  const concurrency = app.config.WORKER_CONCURRENCY;
  const { project } = await createApiKey(app.db, `bench-ingest-${randomUUID()}`);
  const rawTenant = randomUUID();
  const total = assetCount * chunks;
  const data = randomUnitVectors(total, 7);
  const space = "bench-ingest";
  try {
    await app.vectorStore.ensureSchema([{ name: space, dimensions: DIMENSIONS }]);
    const assets = await app.db.asset.createManyAndReturn({
      data: Array.from({ length: assetCount }, (_, row) => ({
        projectId: project.id, modality: "TEXT" as const, sha256: `${row}`.padStart(64, "0"), mimeType: "text/plain", byteSize: 1, source: "text", status: "PROCESSING" as const,
      })),
    });
    // Worker path: the index stage per asset, as many at once as a worker runs jobs.
    let next = 0;
    const workerStarted = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < assets.length) {
          const row = next++;
          const state: IngestState = {
            // New assets, as the ingest handler tells the stage for a first ingest: no old vectors to count.
            hadEmbeddings: false,
            derivedText: [],
            vectors: Array.from({ length: chunks }, (_, chunk) => ({ space, model: "random", chunk, vector: rowOf(data, row * chunks + chunk), text: `chunk ${chunk}` })),
          };
          await indexStage.run(assets[row]!, state, { app } as JobHandlerContext);
        }
      }),
    );
    const workerVectorsPerSec = total / ((performance.now() - workerStarted) / 1000);

    // The client alone: the same vectors, insertMany in batches of 500, one tenant, no Tessera code.
    const url = new URL(weaviateUrl);
    const client = await weaviate.connectToLocal({ host: url.hostname, port: Number(url.port || 8080), grpcPort });
    try {
      const collection = client.collections.use(app.config.WEAVIATE_COLLECTION).withTenant(rawTenant);
      const clientStarted = performance.now();
      for (let start = 0; start < total; start += 500) {
        const objects = [];
        for (let index = start; index < Math.min(total, start + 500); index++) {
          objects.push({
            properties: { assetId: `raw${Math.floor(index / chunks)}`, space, chunk: index % chunks, model: "random", modality: "TEXT", text: `chunk ${index % chunks}`, tags: [], metadataPairs: [] },
            vectors: { bench_ingest: Array.from(rowOf(data, index)) },
          });
        }
        const result = await collection.data.insertMany(objects);
        if (result.hasErrors) throw new Error(`raw insertMany failed: ${JSON.stringify(Object.values(result.errors)[0])}`);
      }
      const clientVectorsPerSec = total / ((performance.now() - clientStarted) / 1000);
      return {
        vectors: total,
        assets: assetCount,
        concurrency,
        workerVectorsPerSec: round(workerVectorsPerSec, 0),
        clientVectorsPerSec: round(clientVectorsPerSec, 0),
        workerVsClient: round(workerVectorsPerSec / clientVectorsPerSec, 3),
      };
    } finally {
      await client.collections.use(app.config.WEAVIATE_COLLECTION).tenants.remove([{ name: rawTenant }]).catch(() => {});
      await client.close();
    }
  } finally {
    await app.vectorStore.deleteProject(project.id);
    await app.db.project.delete({ where: { id: project.id } });
  }
}

export default async function searchBench() {
  const vectorCount = env("BENCH_SEARCH_VECTORS", 100_000);
  const queryCount = env("BENCH_SEARCH_QUERIES", 100);
  const graphqlAssets = env("BENCH_SEARCH_GRAPHQL_ASSETS", 2000);
  const graphqlQueries = env("BENCH_SEARCH_GRAPHQL_QUERIES", 300);
  const ingestAssets = env("BENCH_SEARCH_INGEST_ASSETS", 250);
  const efValues = (process.env.BENCH_SEARCH_EF_SWEEP ?? "").split(",").filter(Boolean).map(Number);
  // BENCH_SEARCH_STORES=embedded runs without a Weaviate (no ingest part then).
  const storeKinds = new Set((process.env.BENCH_SEARCH_STORES ?? "weaviate,embedded").split(","));
  const withHnsw = storeKinds.has("weaviate") && (process.env.BENCH_SEARCH_HNSW === "1" || efValues.length > 0);
  const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" });
  const weaviateUrl = config.WEAVIATE_URL ?? "http://127.0.0.1:8080";
  const url = new URL(weaviateUrl);
  const connectAdmin = () => weaviate.connectToLocal({ host: url.hostname, port: Number(url.port || 8080), grpcPort: config.WEAVIATE_GRPC_PORT });
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-search-"));

  log(`${vectorCount} random ${DIMENSIONS}-d vectors, ${queryCount} queries; exact top-${K} by brute force`);
  const data = randomUnitVectors(vectorCount, 1);
  const queries = randomUnitVectors(queryCount, 2);
  const bruteStarted = performance.now();
  const truth = Array.from({ length: queryCount }, (_, index) => bruteForceTopK(data, vectorCount, rowOf(queries, index)));
  const bruteForceMsPerQuery = round((performance.now() - bruteStarted) / queryCount, 1);
  const bench: BenchData = { data, count: vectorCount, queries, queryCount, truth };
  await applyMigrations(config.DATABASE_URL);

  /** An app context on one store setting; a Weaviate collection of the bench's own, made fresh with that setting. */
  const withApp = async <T>(store: "weaviate" | "embedded", vectorIndex: "flat" | "hnsw", run: (app: AppContext) => Promise<T>) => {
    const collection = `TesseraBench_${vectorIndex}`;
    if (store === "weaviate") {
      const admin = await connectAdmin();
      await admin.collections.delete(collection);
      await admin.close();
    }
    const app = await createAppContext(
      {
        ...config,
        WEAVIATE_URL: store === "weaviate" ? weaviateUrl : undefined,
        WEAVIATE_COLLECTION: collection,
        WEAVIATE_VECTOR_INDEX: vectorIndex,
        dataDir: path.join(dataDir, `${store}-${vectorIndex}`),
      },
      createLogger(config.LOG_LEVEL),
    );
    try {
      return await run(app);
    } finally {
      await app.close();
    }
  };

  const stores: Record<string, unknown> = {};
  let ingest: unknown;
  if (storeKinds.has("weaviate")) log("weaviate, flat index (as shipped): import, recall, GraphQL against the store at this size and on a small project, ingest");
  if (storeKinds.has("weaviate")) stores.weaviate = await withApp("weaviate", "flat", async (app) => {
    const atSize = await storeBench(app, bench, { graphqlQueries: Math.min(graphqlQueries, 100) });
    const smallProject = await smallProjectGraphql(app, graphqlAssets, graphqlQueries);
    log("weaviate: ingest through the index stage vs insertMany alone");
    ingest = await ingestBench(app, weaviateUrl, config.WEAVIATE_GRPC_PORT, ingestAssets, 16);
    return { index: "flat", ...atSize, smallProject };
  });
  if (withHnsw) {
    log("weaviate, HNSW index (WEAVIATE_VECTOR_INDEX=hnsw): import, recall, ef sweep");
    stores.weaviateHnsw = await withApp("weaviate", "hnsw", async (app) => {
      const setEf = async (ef: number) => {
        const admin = await connectAdmin();
        await admin.collections.use(app.config.WEAVIATE_COLLECTION).config.update({
          vectorizers: [
            reconfigure.vectors.update({ name: "bench_recall", vectorIndexConfig: reconfigure.vectorIndex.hnsw({ dynamicEfMin: ef, dynamicEfMax: Math.max(500, ef) }) }),
          ],
        });
        await admin.close();
      };
      return { index: "hnsw", ...(await storeBench(app, bench, { graphqlQueries: 0, setEf, efValues })) };
    });
  }
  if (storeKinds.has("embedded")) log("embedded (LanceDB): import, recall, GraphQL against the store on a small project");
  if (storeKinds.has("embedded")) stores.embedded = await withApp("embedded", "flat", async (app) => ({
    ...(await storeBench(app, bench, { graphqlQueries: 0 })),
    smallProject: await smallProjectGraphql(app, graphqlAssets, graphqlQueries),
  }));
  // The gateway's own cost, with the store stubbed (BENCH_SEARCH_GATEWAY_REQUESTS, default 1000; 0 skips it).
  const gatewayRequests = env("BENCH_SEARCH_GATEWAY_REQUESTS", 1000);
  const gateway = gatewayRequests > 0 ? await withApp("embedded", "flat", (app) => gatewayAlone(app, gatewayRequests)) : undefined;
  const bareYoga = gatewayRequests > 0 ? await yogaFloor(gatewayRequests) : undefined;
  await fs.rm(dataDir, { recursive: true, force: true });

  console.log(JSON.stringify({ bench: "search", vectors: vectorCount, dimensions: DIMENSIONS, queries: queryCount, bruteForceMsPerQuery, stores, gatewayAlone: gateway, bareYoga, ingest }));
}
