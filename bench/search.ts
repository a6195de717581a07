/**
 * `npm run bench -- search`: the vector stores and the search path, each
 * against the engine underneath, in one run.
 *
 * 1. recall@10 of each adapter's nearVector against exact brute force, on
 *    BENCH_SEARCH_VECTORS random unit 512-d vectors (default 20000, so the
 *    bench stays within a few minutes on 2 cores; the figure is
 *    BENCH_SEARCH_VECTORS=100000, about 10 minutes of Weaviate import here) and
 *    BENCH_SEARCH_QUERIES random queries (default 100).
 *    BENCH_SEARCH_EF_SWEEP="500,1000" also measures Weaviate at those HNSW ef.
 * 2. `search` through GraphQL (an asset query) against the same query sent
 *    straight to the store (vectorsOf + nearVector), sequentially: queries/s
 *    and p50/p99, per adapter, over BENCH_SEARCH_GRAPHQL_ASSETS assets.
 * 3. Ingest: vectors/s into Weaviate through the worker's index stage
 *    (WORKER_CONCURRENCY jobs at once, BENCH_SEARCH_INGEST_ASSETS assets x 16
 *    chunks) against weaviate-client's batch import (insertMany) alone.
 *
 * Needs PostgreSQL, Redis and Weaviate (WEAVIATE_URL, default http://127.0.0.1:8080).
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import weaviate, { reconfigure } from "weaviate-client";
import { createAppContext, type AppContext } from "../services/core/app-context.ts";
import { createApiKey } from "../services/core/api-keys.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import { LanceDbVectorStore } from "../services/search/lancedb-vector-store.ts";
import type { VectorRecord, VectorStore } from "../services/search/vector-store.ts";
import { WeaviateVectorStore } from "../services/search/weaviate-vector-store.ts";
import type { IngestState } from "../services/worker/ingest/ingest-stage.ts";
import { indexStage } from "../services/worker/ingest/index-stage.ts";
import type { JobHandlerContext } from "../services/worker/job-handler.ts";

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

async function timeEach(count: number, run: (index: number) => Promise<void>) {
  const latencies: number[] = [];
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    const begin = performance.now();
    await run(index);
    latencies.push(performance.now() - begin);
  }
  const seconds = (performance.now() - started) / 1000;
  return { qps: round(count / seconds, 1), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)) };
}

async function upsertAll(store: VectorStore, projectId: string, data: Float32Array, count: number, space: string) {
  const started = performance.now();
  const slice = 10_000; // bounds the size of the record objects held at once
  for (let start = 0; start < count; start += slice) {
    const records: VectorRecord[] = [];
    for (let row = start; row < Math.min(count, start + slice); row++) {
      records.push({ assetId: `v${row}`, space, chunk: 0, vector: rowOf(data, row), model: "random", modality: "TEXT", text: "", tags: [], metadata: {} });
    }
    await store.upsert(projectId, records);
    log(`  ${store.kind}: ${Math.min(count, start + slice)}/${count} vectors imported`);
  }
  return round(count / ((performance.now() - started) / 1000), 0);
}

async function recallBench(
  store: VectorStore,
  data: Float32Array,
  count: number,
  queries: Float32Array,
  queryCount: number,
  truth: number[][],
  /** Weaviate only: also measure with these search widths (HNSW ef), set on the live collection one after another. */
  efSweep: { values: number[]; setEf(ef: number): Promise<void> } | undefined = undefined,
) {
  const projectId = randomUUID();
  const measure = async () => {
    let found = 0;
    const timing = await timeEach(queryCount, async (index) => {
      const hits = await store.nearVector(projectId, { space: "bench-recall", vector: rowOf(queries, index), limit: K });
      const expected = new Set(truth[index]!.map((row) => `v${row}`));
      found += hits.filter((hit) => expected.has(hit.assetId)).length;
    });
    return { recallAt10: round(found / (queryCount * K), 4), nearVector: timing };
  };
  try {
    const importVectorsPerSec = await upsertAll(store, projectId, data, count, "bench-recall");
    const atDefault = await measure();
    const sweep: Array<{ ef: number; recallAt10: number; p50Ms: number }> = [];
    for (const ef of efSweep?.values ?? []) {
      await efSweep!.setEf(ef);
      const result = await measure();
      sweep.push({ ef, recallAt10: result.recallAt10, p50Ms: result.nearVector.p50Ms });
      log(`  ef ${ef}: recall@10 ${result.recallAt10}, p50 ${result.nearVector.p50Ms} ms`);
    }
    return { ...atDefault, importVectorsPerSec, ...(sweep.length ? { efSweep: sweep } : {}) };
  } finally {
    await store.deleteProject(projectId);
  }
}

async function graphqlBench(app: AppContext, assetCount: number, queryCount: number) {
  const gateway = createGateway(app);
  const address = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${address.port}/graphql`;
  const { key, project } = await createApiKey(app.db, `bench-search-${randomUUID()}`);
  try {
    const data = randomUnitVectors(assetCount, 42);
    const assetIds: string[] = [];
    for (let row = 0; row < assetCount; row++) assetIds.push(randomUUID());
    await app.db.asset.createMany({
      data: assetIds.map((id, row) => ({
        id, projectId: project.id, modality: "TEXT" as const, sha256: `${row}`.padStart(64, "0"), mimeType: "text/plain", byteSize: 1, source: "text", status: "READY" as const,
      })),
    });
    await app.vectorStore.upsert(
      project.id,
      assetIds.map((assetId, row) => ({ assetId, space: "bench-graphql", chunk: 0, vector: rowOf(data, row), model: "random", modality: "TEXT", text: `asset ${row}`, tags: [], metadata: {} })),
    );
    const pick = (index: number) => assetIds[(index * 7919) % assetCount]!;
    const viaStore = async (index: number) => {
      const assetId = pick(index);
      const [stored] = await app.vectorStore.vectorsOf(project.id, assetId);
      await app.vectorStore.nearVector(project.id, { space: stored!.space, vector: stored!.vector, limit: K * 4, filter: { excludeAssetIds: [assetId] } });
    };
    const query = `query($id: ID!) { search(input: { assetId: $id, limit: ${K} }) { hits { score snippet asset { id modality } } } }`;
    const viaGraphql = async (index: number) => {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ query, variables: { id: pick(index) } }),
      });
      const result = (await response.json()) as { errors?: unknown[]; data?: { search: { hits: unknown[] } } };
      if (result.errors || result.data?.search.hits.length !== K) throw new Error(`search failed: ${JSON.stringify(result.errors ?? result.data)}`);
    };
    for (let index = 0; index < 20; index++) await Promise.all([viaStore(index), viaGraphql(index)]); // warm-up
    const store = await timeEach(queryCount, viaStore);
    const graphql = await timeEach(queryCount, viaGraphql);
    return { assets: assetCount, queries: queryCount, store, graphql, p50Overhead: round(graphql.p50Ms / store.p50Ms - 1, 3) };
  } finally {
    await app.vectorStore.deleteProject(project.id);
    await app.db.project.delete({ where: { id: project.id } });
    await gateway.close();
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
      const collection = client.collections.use("TesseraVector").withTenant(rawTenant);
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
      await client.collections.use("TesseraVector").tenants.remove([{ name: rawTenant }]).catch(() => {});
      await client.close();
    }
  } finally {
    await app.vectorStore.deleteProject(project.id);
    await app.db.project.delete({ where: { id: project.id } });
  }
}

export default async function searchBench() {
  const vectorCount = env("BENCH_SEARCH_VECTORS", 20_000);
  const queryCount = env("BENCH_SEARCH_QUERIES", 100);
  const graphqlAssets = env("BENCH_SEARCH_GRAPHQL_ASSETS", 2000);
  const graphqlQueries = env("BENCH_SEARCH_GRAPHQL_QUERIES", 300);
  const ingestAssets = env("BENCH_SEARCH_INGEST_ASSETS", 250);
  const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" });
  const weaviateUrl = config.WEAVIATE_URL ?? "http://127.0.0.1:8080";
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-search-"));

  log(`${vectorCount} random ${DIMENSIONS}-d vectors, ${queryCount} queries; exact top-${K} by brute force`);
  const data = randomUnitVectors(vectorCount, 1);
  const queries = randomUnitVectors(queryCount, 2);
  const bruteStarted = performance.now();
  const truth = Array.from({ length: queryCount }, (_, index) => bruteForceTopK(data, vectorCount, rowOf(queries, index)));
  const bruteForceMsPerQuery = round((performance.now() - bruteStarted) / queryCount, 1);

  const recall: Record<string, unknown> = {};
  // A fresh collection, so the index settings measured are the ones in the adapter now.
  const url = new URL(weaviateUrl);
  const admin = await weaviate.connectToLocal({ host: url.hostname, port: Number(url.port || 8080), grpcPort: config.WEAVIATE_GRPC_PORT });
  await admin.collections.delete("TesseraBench");
  await admin.close();
  const weaviateStore = await WeaviateVectorStore.connect({ url: weaviateUrl, grpcPort: config.WEAVIATE_GRPC_PORT, collection: "TesseraBench" });
  log("weaviate: import + queries");
  const efValues = (process.env.BENCH_SEARCH_EF_SWEEP ?? "").split(",").filter(Boolean).map(Number);
  const setEf = async (ef: number) => {
    const client = await weaviate.connectToLocal({ host: url.hostname, port: Number(url.port || 8080), grpcPort: config.WEAVIATE_GRPC_PORT });
    await client.collections.use("TesseraBench").config.update({
      vectorizers: [
        reconfigure.vectors.update({ name: "bench_recall", vectorIndexConfig: reconfigure.vectorIndex.hnsw({ dynamicEfMin: ef, dynamicEfMax: Math.max(500, ef) }) }),
      ],
    });
    await client.close();
  };
  recall.weaviate = await recallBench(weaviateStore, data, vectorCount, queries, queryCount, truth, { values: efValues, setEf });
  await weaviateStore.close();
  const lanceStore = await LanceDbVectorStore.open(path.join(dataDir, "recall"));
  log("embedded (LanceDB): import + queries");
  recall.embedded = await recallBench(lanceStore, data, vectorCount, queries, queryCount, truth);
  await lanceStore.close();

  await applyMigrations(config.DATABASE_URL);
  const graphql: Record<string, unknown> = {};
  let ingest: unknown;
  for (const kind of ["weaviate", "embedded"] as const) {
    const app = await createAppContext(
      { ...config, WEAVIATE_URL: kind === "weaviate" ? weaviateUrl : undefined, dataDir: path.join(dataDir, kind) },
      createLogger(config.LOG_LEVEL),
    );
    try {
      log(`${kind}: search through GraphQL vs the store`);
      graphql[kind] = await graphqlBench(app, graphqlAssets, graphqlQueries);
      if (kind === "weaviate") {
        log("weaviate: ingest through the index stage vs insertMany alone");
        ingest = await ingestBench(app, weaviateUrl, config.WEAVIATE_GRPC_PORT, ingestAssets, 16);
      }
    } finally {
      await app.close();
    }
  }
  await fs.rm(dataDir, { recursive: true, force: true });

  console.log(
    JSON.stringify({
      bench: "search",
      vectors: vectorCount,
      dimensions: DIMENSIONS,
      queries: queryCount,
      bruteForceMsPerQuery,
      recall,
      graphql,
      ingest,
    }),
  );
}
