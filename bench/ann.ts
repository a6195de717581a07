/**
 * `npm run bench -- ann`: recall@10 and latency of approximate vector search on realistic embeddings, for the
 * embedded store (LanceDB: exact scan, then its IVF_PQ index at several nprobes / refine factors) and Weaviate's
 * HNSW index (several ef), against exact brute force, in one run.
 *
 * Vectors: the bundled sentence encoder (use-lite-sentence, 512-d, the "sentence" space) on real English
 * sentences, the prose of the installed packages' README files (test/support/real-sentences.ts). BENCH_ANN_QUERIES
 * sentences (default 100) are held out as the queries; the rest (BENCH_ANN_REAL, default 3000) are stored.
 * The store is grown to BENCH_ANN_VECTORS (default 100000) with derived vectors, each
 * normalise(0.75·a + 0.25·b + 0.01·g): a and b two stored real vectors picked at random (seeded), g a standard
 * normal vector (norm ≈ 0.23 at 512-d): near-paraphrases and blends that keep the real vectors' anisotropic
 * distribution, not the uniform sphere of random vectors (HNSW's and IVF's worst case).
 * Ground truth: exact cosine top 10 over all stored vectors. Every store call goes through Tessera's adapters
 * (nearVector, project-scoped), one query at a time.
 *
 * BENCH_ANN_EXACT_QUERIES (default 20): queries timed on the exact scan. BENCH_ANN_PROBES (default "20,40") x BENCH_ANN_REFINE (default "10,20,50"): LanceDB settings; BENCH_ANN_EF
 * (default "64,128,256,512"): Weaviate ef values; BENCH_ANN_WEAVIATE=0 skips Weaviate (WEAVIATE_URL, default the
 * local http://127.0.0.1:8080: `npm run weaviate:start`; skipped with a note when it does not answer).
 */
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import weaviate, { reconfigure } from "weaviate-client";
import { createLogger } from "../services/core/logger.ts";
import { createModelRuntime } from "../services/models/local-model-runtime.ts";
import { LanceDbVectorStore } from "../services/search/lancedb-vector-store.ts";
import type { VectorRecord, VectorStore } from "../services/search/vector-store.ts";
import { WeaviateVectorStore } from "../services/search/weaviate-vector-store.ts";
import { exactTopK, growVectors, realSentences } from "../test/support/real-sentences.ts";

const K = 10;
const SPACE = "sentence";
const PROJECT = "bench-ann";
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(",").filter(Boolean).map(Number);
const log = (message: string) => process.stderr.write(`[bench ann] ${message}\n`);
const round = (value: number, digits = 2) => Number(value.toFixed(digits));

const assetIdOf = (row: number) => `00000000-0000-4000-8000-${row.toString().padStart(12, "0")}`;

function percentile(samples: number[], p: number) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

type Row = { store: string; setting: string; recallAt10: number; p50Ms: number; p90Ms: number };

/** recall@10 and sequential latency of `store.nearVector` over the queries, after a short warm-up. */
async function measure(store: VectorStore, queries: Float32Array[], truth: number[][]) {
  for (const query of queries.slice(0, 5)) await store.nearVector(PROJECT, { space: SPACE, vector: query, limit: K });
  const samples: number[] = [];
  let found = 0;
  for (let index = 0; index < queries.length; index++) {
    const started = performance.now();
    const hits = await store.nearVector(PROJECT, { space: SPACE, vector: queries[index]!, limit: K });
    samples.push(performance.now() - started);
    const expected = new Set(truth[index]!.map(assetIdOf));
    found += hits.filter((hit) => expected.has(hit.assetId)).length;
  }
  return { recallAt10: round(found / (queries.length * K), 4), p50Ms: round(percentile(samples, 50)), p90Ms: round(percentile(samples, 90)) };
}

async function load(store: VectorStore, vectors: Float32Array[]) {
  await store.ensureSchema([{ name: SPACE, dimensions: vectors[0]!.length }]);
  const slice = 5000;
  for (let start = 0; start < vectors.length; start += slice) {
    const records: VectorRecord[] = vectors.slice(start, start + slice).map((vector, offset) => ({
      assetId: assetIdOf(start + offset), space: SPACE, chunk: 0, vector, model: "use-lite-sentence", modality: "TEXT", text: "", tags: [], metadata: {},
    }));
    await store.upsert(PROJECT, records, { allNew: true });
  }
}

/** The longest the event loop waited for a 10 ms timer while `work` ran: the index build must not hold it. */
async function withEventLoopLag<T>(work: () => Promise<T>): Promise<{ result: T; maxLagMs: number }> {
  let maxLagMs = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    maxLagMs = Math.max(maxLagMs, now - last - 10);
    last = now;
  }, 10);
  try {
    return { result: await work(), maxLagMs: round(maxLagMs, 1) };
  } finally {
    clearInterval(timer);
  }
}

async function lanceDbRows(vectors: Float32Array[], queries: Float32Array[], truth: number[][], dir: string) {
  const rows: Row[] = [];
  const loading = await LanceDbVectorStore.open(dir, { indexMinRows: 0 });
  let started = performance.now();
  await load(loading, vectors);
  log(`lancedb: ${vectors.length} vectors stored in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  // The exact scan's recall is 1 by construction and each query costs a full scan: a few queries give its latency.
  const exactQueries = env("BENCH_ANN_EXACT_QUERIES", 20);
  rows.push({ store: "lancedb", setting: `exact scan (${exactQueries} queries)`, ...(await measure(loading, queries.slice(0, exactQueries), truth)) });
  log(`lancedb exact: ${JSON.stringify(rows.at(-1))}`);
  started = performance.now();
  const { maxLagMs } = await withEventLoopLag(() => loading.buildVectorIndex(SPACE));
  const build = { seconds: round((performance.now() - started) / 1000, 1), maxEventLoopLagMs: maxLagMs };
  log(`lancedb: IVF_PQ index built in ${build.seconds} s (event loop held at most ${maxLagMs} ms)`);
  await loading.close();
  for (const nprobes of list("BENCH_ANN_PROBES", "20,40")) {
    for (const refineFactor of list("BENCH_ANN_REFINE", "10,20,50")) {
      // indexMinRows 1: the bench's project always goes through the index (the store's rule is a project of that size).
      const store = await LanceDbVectorStore.open(dir, { indexMinRows: 1, nprobes, refineFactor });
      rows.push({ store: "lancedb", setting: `IVF_PQ nprobes ${nprobes} refine ${refineFactor}`, ...(await measure(store, queries, truth)) });
      log(`lancedb: ${JSON.stringify(rows.at(-1))}`);
      await store.close();
    }
  }
  return { rows, build };
}

async function weaviateRows(vectors: Float32Array[], queries: Float32Array[], truth: number[][]) {
  const url = new URL(process.env.WEAVIATE_URL ?? "http://127.0.0.1:8080");
  const grpcPort = env("WEAVIATE_GRPC_PORT", 50051);
  const collection = "TesseraBenchAnn";
  const admin = await weaviate.connectToLocal({ host: url.hostname, port: Number(url.port || 8080), grpcPort }).catch(() => null);
  if (!admin) return { rows: [] as Row[], skipped: `no Weaviate at ${url.origin}` };
  const store = await WeaviateVectorStore.connect({ url: url.origin, grpcPort, collection, vectorIndex: "hnsw" });
  try {
    await admin.collections.delete(collection);
    const started = performance.now();
    await load(store, vectors);
    const importSeconds = round((performance.now() - started) / 1000, 1);
    log(`weaviate: ${vectors.length} vectors imported into HNSW in ${importSeconds} s`);
    const rows: Row[] = [];
    for (const ef of list("BENCH_ANN_EF", "64,128,256,512")) {
      await admin.collections.use(collection).config.update({
        vectorizers: [reconfigure.vectors.update({ name: SPACE, vectorIndexConfig: reconfigure.vectorIndex.hnsw({ ef }) })],
      });
      rows.push({ store: "weaviate", setting: `HNSW ef ${ef}`, ...(await measure(store, queries, truth)) });
      log(`weaviate: ${JSON.stringify(rows.at(-1))}`);
    }
    return { rows, importSeconds };
  } finally {
    await admin.collections.delete(collection).catch(() => {});
    await admin.close();
    await store.close();
  }
}

/**
 * The sentence space's vectors of the sentences, cached under the OS temp dir by the sentences' hash: encoding
 * thousands of sentences on a busy 2-core machine takes minutes, and reruns (other sizes, settings) need not repeat it.
 */
async function encodeCached(sentences: string[]): Promise<Float32Array[]> {
  const key = createHash("sha1").update(sentences.join("\n")).digest("hex").slice(0, 16);
  const cache = path.join(os.tmpdir(), `tessera-bench-ann-${SPACE}-${key}.f32`);
  const cached = await fs.readFile(cache).catch(() => null);
  if (cached) {
    const data = new Float32Array(cached.buffer, cached.byteOffset, cached.byteLength / 4);
    const dimensions = data.length / sentences.length;
    log(`${sentences.length} sentence vectors from ${cache}`);
    return Array.from({ length: sentences.length }, (_, row) => data.slice(row * dimensions, (row + 1) * dimensions));
  }
  const models = createModelRuntime({ modelsDir: path.resolve(import.meta.dirname, "../models"), logger: createLogger("warn", "bench") });
  const started = performance.now();
  const encoded: Float32Array[] = [];
  try {
    for (let start = 0; start < sentences.length; start += 256) {
      const spaces = await models.embedText(sentences.slice(start, start + 256));
      const sentence = spaces.find((space) => space.space === SPACE);
      if (!sentence) throw new Error(`no model embeds text into the "${SPACE}" space`);
      encoded.push(...sentence.vectors);
      log(`  ${encoded.length}/${sentences.length} sentences encoded`);
    }
  } finally {
    await models.close();
  }
  log(`${sentences.length} sentences encoded (${SPACE}, ${encoded[0]!.length}-d) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const all = new Float32Array(encoded.length * encoded[0]!.length);
  encoded.forEach((vector, row) => all.set(vector, row * vector.length));
  await fs.writeFile(cache, new Uint8Array(all.buffer));
  return encoded;
}

export default async function annBench() {
  const total = env("BENCH_ANN_VECTORS", 100_000);
  const queryCount = env("BENCH_ANN_QUERIES", 100);
  const realCount = Math.min(env("BENCH_ANN_REAL", 3000), total);
  const began = performance.now();

  const sentences = realSentences(queryCount + realCount);
  const encoded = await encodeCached(sentences);
  const queries = encoded.slice(0, queryCount);
  const vectors = growVectors(encoded.slice(queryCount), total);
  let started = performance.now();
  const truth = queries.map((query) => exactTopK(vectors, query));
  log(`${vectors.length} vectors (${realCount} real), ${queryCount} held-out queries; exact top ${K} in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-ann-"));
  try {
    const lance = await lanceDbRows(vectors, queries, truth, dir);
    const weaviateResult = process.env.BENCH_ANN_WEAVIATE === "0" ? { rows: [] as Row[], skipped: "BENCH_ANN_WEAVIATE=0" } : await weaviateRows(vectors, queries, truth);
    const rows = [...lance.rows, ...weaviateResult.rows];
    process.stderr.write(`\n| store | setting | recall@10 | p50 ms | p90 ms |\n|---|---|---|---|---|\n`);
    for (const row of rows) process.stderr.write(`| ${row.store} | ${row.setting} | ${row.recallAt10} | ${row.p50Ms} | ${row.p90Ms} |\n`);
    console.log(
      JSON.stringify({
        bench: "ann",
        vectors: total,
        realVectors: realCount,
        queries: queryCount,
        dimensions: vectors[0]!.length,
        model: "use-lite-sentence",
        cores: os.cpus().length,
        loadAverage: round(os.loadavg()[0]!, 1),
        lancedbIndexBuild: lance.build,
        ...("importSeconds" in weaviateResult ? { weaviateImportSeconds: weaviateResult.importSeconds } : { weaviate: weaviateResult.skipped }),
        rows,
        seconds: round((performance.now() - began) / 1000, 0),
      }),
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
