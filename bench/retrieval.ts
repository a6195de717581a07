/**
 * `npm run bench -- retrieval`: held-out retrieval quality of the default
 * image-text model (tessera-emoji-clip) and its audio projector, through the
 * real `search` API, against the same figures computed straight on the
 * exported ONNX models (transformers.js + onnxruntime-node) in the same run.
 *
 * Candidates: every OpenMoji drawing (a style never trained on) of the
 * trained concepts, ingested through GraphQL into one project; the held-out
 * concepts' OpenMoji drawings go into a second project. Queries:
 * - text -> image: the emoji's English label (`search(input: {text})`);
 * - image -> image: its Noto and Twemoji drawings uploaded as the query file;
 * - audio -> image: its label spoken by espeak-ng in a voice no training clip used, uploaded as WAV.
 * All with `modalities: [IMAGE]`, `limit: 10`.
 *
 * BENCH_RETRIEVAL_QUERIES caps the query concepts per split (default 500, spread evenly over
 * the pool; candidates are always the whole pool; the direct figures use every concept),
 * BENCH_RETRIEVAL_SPLITS the splits measured (default "train,heldout"; a split left out reports 0 queries),
 * BENCH_RETRIEVAL_CONCURRENCY the requests in flight (default 4), BENCH_RETRIEVAL_DIRECT=<file> keeps the
 * direct figures (they depend on the model files only) and reads them back on the next run, to iterate on search.
 * Needs PostgreSQL and Redis; uses Weaviate when WEAVIATE_URL is set, else the embedded store.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createApiKey } from "../services/core/api-keys.ts";
import { createAppContext } from "../services/app/app-context.ts";
import { loadConfig } from "../services/core/config.ts";
import { createLogger } from "../services/core/logger.ts";
import { applyMigrations } from "../services/core/migrate.ts";
import { createGateway } from "../services/gateway/gateway.ts";
import { startWorkerPool } from "../services/worker/worker-pool.ts";
import { EVAL_VOICE } from "../training/audio-features.ts";
import { loadEmojiConcepts, loadIconSet, type EmojiConcept } from "../training/emoji-concepts.ts";
import { evaluateHeldOut, type HeldOutFigures, type SplitFigures } from "../training/heldout-evaluation.ts";
import { renderIconPng } from "../training/icon-renderer.ts";
import { IMAGE_SIZE } from "../training/image-tower.ts";
import { encodeWav } from "../services/generation/wav-file.ts";
import { SAMPLE_RATE, speak } from "../training/spoken-labels.ts";
import type { Recall } from "../training/retrieval-metrics.ts";
import { benchGraphql, type Upload } from "./fixtures/bench-graphql.ts";

const MODEL_DIR = path.resolve(import.meta.dirname, "../models/tessera-emoji-clip");
const log = (message: string) => process.stderr.write(`[bench retrieval] ${message}\n`);
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const INGEST = `mutation ($input: IngestInput!) { ingest(input: $input) { asset { id } job { id } } }`;
const SEARCH = `query ($input: SearchInput!) { search(input: $input) { hits { asset { id } } } }`;



async function inParallel<T, R>(items: T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]!, index);
      }
    }),
  );
  return results;
}

/** A split not measured (BENCH_RETRIEVAL_SPLITS). */
const none: Recall = { r1: 0, r5: 0, r10: 0, queries: 0, candidates: 0 };

function recallFromRanks(ranks: number[], candidates: number): Recall {
  const share = (k: number) => Math.round((ranks.filter((rank) => rank >= 0 && rank < k).length / ranks.length) * 10_000) / 10_000;
  return { r1: share(1), r5: share(5), r10: share(10), queries: ranks.length, candidates };
}

/** The figures straight on the ONNX models; with a file, read from it when it exists, else computed and kept in it. */
async function directFigures(file: string | undefined): Promise<HeldOutFigures> {
  if (file) {
    const kept = await fs.readFile(file, "utf8").catch(() => undefined);
    if (kept) {
      log(`direct: read from ${file}`);
      return JSON.parse(kept) as HeldOutFigures;
    }
  }
  log("direct: the exported ONNX models through transformers.js, no service in between");
  const figures = await evaluateHeldOut(MODEL_DIR, { log });
  if (file) await fs.writeFile(file, JSON.stringify(figures));
  return figures;
}

export default async function retrievalBench() {
  const cap = env("BENCH_RETRIEVAL_QUERIES", 500);
  const concurrency = env("BENCH_RETRIEVAL_CONCURRENCY", 4);
  const concepts = loadEmojiConcepts();

  const directStarted = performance.now();
  const direct = await directFigures(process.env.BENCH_RETRIEVAL_DIRECT);
  const directSeconds = (performance.now() - directStarted) / 1000;

  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-retrieval-"));
  // No reconciler: it re-queues stuck assets of every project in the database, and a bench beside this one (its
  // own data directory) took this one's uploads into its queue and failed them ("blob ... is missing").
  const config = loadConfig({ ...process.env, DATA_DIR: dataDir, QUEUE_PREFIX: `bench-retrieval-${randomUUID().slice(0, 8)}`, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn", RECONCILE_INTERVAL_MS: "0" });
  await applyMigrations(config.DATABASE_URL);
  const app = await createAppContext(config, createLogger(config.LOG_LEVEL));
  const gateway = createGateway(app);
  const address = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${address.port}/graphql`;
  const workers = startWorkerPool(app);
  const projects: string[] = [];
  try {
    const served = app.models.list().filter((model) => model.space === "image-text" || model.task === "project");
    log(`store: ${config.WEAVIATE_URL ? "weaviate" : "embedded"}; models: ${served.map((model) => model.name).join(", ")}`);

    const graphql = benchGraphql(url);

    const openmoji = loadIconSet("openmoji");
    const querySets = { noto: loadIconSet("noto"), twemoji: loadIconSet("twemoji") };

    const measureSplit = async (split: EmojiConcept["split"]): Promise<{ figures: SplitFigures; ingestPerSecond: number; searchMsMean: number }> => {
      const pool = concepts.filter((concept) => concept.split === split);
      const { key, project } = await createApiKey(app.db, `bench-retrieval-${split}-${randomUUID().slice(0, 8)}`);
      projects.push(project.id);
      log(`${split}: ingesting ${pool.length} OpenMoji drawings through GraphQL`);
      const ingestStarted = performance.now();
      const ingested = await inParallel(pool, concurrency * 2, async (concept) => {
        const bytes = await renderIconPng(openmoji, concept.name, IMAGE_SIZE);
        const data = await graphql(key, INGEST, { metadata: { concept: concept.name } }, { bytes, filename: `${concept.name}.png`, mimeType: "image/png" });
        return { concept: concept.name, assetId: data.ingest.asset.id as string, jobId: data.ingest.job.id as string };
      });
      const jobIds = ingested.map((entry) => entry.jobId);
      for (;;) {
        const pending = await app.db.job.count({ where: { id: { in: jobIds }, status: { notIn: ["SUCCEEDED", "FAILED"] } } });
        if (pending === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const failed = await app.db.job.count({ where: { id: { in: jobIds }, status: "FAILED" } });
      if (failed > 0) throw new Error(`${failed} ingest jobs failed`);
      const ingestPerSecond = pool.length / ((performance.now() - ingestStarted) / 1000);
      const conceptOf = new Map(ingested.map((entry) => [entry.assetId, entry.concept]));

      let searches = 0;
      let searchMs = 0;
      const rankOf = async (concept: string, input: Record<string, unknown>, file?: Upload) => {
        const started = performance.now();
        const data = await graphql(key, SEARCH, { ...input, modalities: ["IMAGE"], limit: 10 }, file);
        searchMs += performance.now() - started;
        searches++;
        return (data.search.hits as Array<{ asset: { id: string } }>).findIndex((hit) => conceptOf.get(hit.asset.id) === concept);
      };
      const every = Math.ceil(pool.length / Math.min(pool.length, cap));
      const queries = pool.filter((_, index) => index % every === 0);
      log(`${split}: ${queries.length} text, ${queries.length * 2} image and ${queries.length} audio queries`);
      const textRanks = await inParallel(queries, concurrency, (concept) => rankOf(concept.name, { text: concept.label }));
      const imageQueries = queries.flatMap((concept) => (["noto", "twemoji"] as const).map((style) => ({ concept, style })));
      const imageRanks = await inParallel(imageQueries, concurrency, async ({ concept, style }) =>
        rankOf(concept.name, {}, { bytes: await renderIconPng(querySets[style], concept.name, IMAGE_SIZE), filename: `${style}.png`, mimeType: "image/png" }),
      );
      const audioRanks = await inParallel(queries, concurrency, async (concept) =>
        rankOf(concept.name, {}, { bytes: encodeWav(await speak(concept.label, EVAL_VOICE), SAMPLE_RATE), filename: "spoken.wav", mimeType: "audio/wav" }),
      );
      return {
        figures: {
          textToImage: recallFromRanks(textRanks, pool.length),
          imageToImage: recallFromRanks(imageRanks, pool.length),
          audioToImage: recallFromRanks(audioRanks, pool.length),
        },
        ingestPerSecond,
        searchMsMean: searchMs / searches,
      };
    };

    const splits = (process.env.BENCH_RETRIEVAL_SPLITS ?? "train,heldout").split(",");
    const skipped = { figures: { textToImage: none, imageToImage: none, audioToImage: none }, ingestPerSecond: 0, searchMsMean: 0 };
    const trained = splits.includes("train") ? await measureSplit("train") : skipped;
    const heldOut = splits.includes("heldout") ? await measureSplit("heldout") : skipped;
    const throughSearch: HeldOutFigures = { trainedConcepts: trained.figures, heldOutConcepts: heldOut.figures };
    const r10 = (figures: HeldOutFigures) => ({
      textToImage: figures.trainedConcepts.textToImage.r10,
      imageToImage: figures.trainedConcepts.imageToImage.r10,
      audioToImage: figures.trainedConcepts.audioToImage.r10,
    });
    const searchR10 = r10(throughSearch);
    const directR10 = r10(direct);
    console.log(
      JSON.stringify({
        bench: "retrieval",
        model: "tessera-emoji-clip",
        store: config.WEAVIATE_URL ? "weaviate" : "embedded",
        candidates: { trained: trained.figures.textToImage.candidates, heldOut: heldOut.figures.textToImage.candidates },
        throughSearch,
        direct,
        searchVsDirectR10: Object.fromEntries(
          Object.entries(searchR10).map(([task, value]) => [task, Math.round((value / (directR10[task as keyof typeof directR10] || 1)) * 1000) / 1000]),
        ),
        targets: {
          textToImageR10: { target: 0.5, measured: searchR10.textToImage, met: searchR10.textToImage >= 0.5 },
          audioToImageR10: { target: 0.3, measured: searchR10.audioToImage, met: searchR10.audioToImage >= 0.3 },
        },
        ingestPerSecond: Math.round(trained.ingestPerSecond * 10) / 10,
        searchMsMean: Math.round(((trained.searchMsMean + heldOut.searchMsMean) / 2) * 10) / 10,
        directSeconds: Math.round(directSeconds),
      }),
    );
  } finally {
    for (const projectId of projects) await app.vectorStore.deleteProject(projectId).catch(() => {});
    await workers.close();
    await gateway.close();
    await app.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}
