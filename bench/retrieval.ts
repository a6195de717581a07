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
 * BENCH_RETRIEVAL_QUERIES caps the query concepts per split (default: all of them, the queries the direct
 * figures ask; a cap spreads them evenly over the pool and the direct figures are then taken over the same
 * queries; candidates are always the whole pool), BENCH_RETRIEVAL_SPLITS the splits measured (default
 * "train,heldout"; a split left out reports 0 queries), BENCH_RETRIEVAL_CONCURRENCY the requests in flight
 * (default 4), BENCH_RETRIEVAL_DIRECT=<file> keeps the direct figures and each query's direct rank (they depend
 * on the model files only) and reads them back on the next run, to iterate on search.
 * BENCH_RETRIEVAL_LOSSES=<file> writes every query that `search` ranks below top 1 or top 10 where the model
 * directly has it there, with the hits above the right drawing and their `explain`.
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
import { evaluateHeldOut, type HeldOutFigures, type QueryRanks, type SplitFigures } from "../training/heldout-evaluation.ts";
import { renderIconPng } from "../training/icon-renderer.ts";
import { IMAGE_SIZE } from "../training/image-tower.ts";
import { encodeWav } from "../services/generation/wav-file.ts";
import { SAMPLE_RATE, speak, wavToSamples } from "../training/spoken-labels.ts";
import { recallOfRanks, type Recall } from "../training/retrieval-metrics.ts";
import { benchGraphql, type Upload } from "./fixtures/bench-graphql.ts";

const MODEL_DIR = path.resolve(import.meta.dirname, "../models/tessera-emoji-clip");
const log = (message: string) => process.stderr.write(`[bench retrieval] ${message}\n`);
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const INGEST = `mutation ($input: IngestInput!) { ingest(input: $input) { asset { id } job { id } } }`;
const SEARCH = `query ($input: SearchInput!) {
  search(input: $input) { hits { asset { id } score snippet explain { vectorScore keyword { rank normalised } spaces { space rank normalised derived } } } }
}`;

type Task = keyof SplitFigures;
type Hit = { asset: { id: string }; score: number; snippet: string | null; explain: unknown };
/** One query through search: the right drawing's rank (-1: not in the top 10) and what ranked above it. */
type SearchedQuery = { key: string; rank: number; above: Array<{ concept: string | undefined; score: number; snippet: string | null; explain: unknown }>; own?: Hit };

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

/** A search is asked again when the connection drops (ECONNRESET on a loaded machine ended two runs); it changes nothing. */
async function withRetries<T>(work: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= attempts || !(error instanceof TypeError)) throw error;
      log(`search failed (${(error as Error).message}); asking again`);
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

/** A split not measured (BENCH_RETRIEVAL_SPLITS). */
const none: Recall = { r1: 0, r5: 0, r10: 0, queries: 0, candidates: 0 };

function recallFromRanks(ranks: number[], candidates: number): Recall {
  const share = (k: number) => Math.round((ranks.filter((rank) => rank >= 0 && rank < k).length / ranks.length) * 10_000) / 10_000;
  return { r1: share(1), r5: share(5), r10: share(10), queries: ranks.length, candidates };
}

type Direct = { figures: HeldOutFigures; ranks: QueryRanks; audioInput: typeof AUDIO_INPUT };

/**
 * The spoken queries go to `search` as 16-bit WAV files, so the direct figures hear the same 16-bit samples: the
 * model's float samples put one held-out label ("persevering face") 10th, its WAV 11th, and search on the WAV was
 * then counted as losing it. A kept direct file from float samples is computed again.
 */
const AUDIO_INPUT = "wav-16-bit";
const asUploadedWav = (samples: Float32Array) => wavToSamples(Buffer.from(encodeWav(samples, SAMPLE_RATE)));

/** The figures straight on the ONNX models; with a file, read from it when it holds them, else computed and kept in it. */
async function directFigures(file: string | undefined, splits: Array<EmojiConcept["split"]>): Promise<Direct> {
  if (file) {
    const kept = await fs.readFile(file, "utf8").catch(() => undefined);
    const parsed = kept ? (JSON.parse(kept) as Partial<Direct>) : undefined;
    const current = parsed?.figures && parsed.ranks && parsed.audioInput === AUDIO_INPUT;
    if (current && splits.every((split) => Object.keys(parsed.ranks![split].textToImage).length > 0)) {
      log(`direct: read from ${file}`);
      return parsed as Direct;
    }
  }
  log("direct: the exported ONNX models through transformers.js, no service in between");
  const empty = () => ({ textToImage: {}, imageToImage: {}, audioToImage: {} });
  const ranks: QueryRanks = { train: empty(), heldout: empty() };
  const figures = await evaluateHeldOut(MODEL_DIR, { log, ranks, splits, spokenAs: asUploadedWav });
  const direct: Direct = { figures, ranks, audioInput: AUDIO_INPUT };
  if (file) await fs.writeFile(file, JSON.stringify(direct));
  return direct;
}

/** Queries `search` ranks below k where the model directly ranks them within k. */
function lostAt(searched: SearchedQuery[], direct: Record<string, number>, k: number): SearchedQuery[] {
  return searched.filter((query) => direct[query.key]! < k && !(query.rank >= 0 && query.rank < k));
}

export default async function retrievalBench() {
  const cap = env("BENCH_RETRIEVAL_QUERIES", Infinity);
  const concurrency = env("BENCH_RETRIEVAL_CONCURRENCY", 4);
  const concepts = loadEmojiConcepts();

  const directStarted = performance.now();
  const splits = (process.env.BENCH_RETRIEVAL_SPLITS ?? "train,heldout").split(",").map((split) => (split === "heldout" ? "heldout" : "train") as EmojiConcept["split"]);
  const { figures: directAll, ranks: directRanks } = await directFigures(process.env.BENCH_RETRIEVAL_DIRECT, splits);
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

    type Measured = { figures: SplitFigures; direct: SplitFigures; searched: Record<Task, SearchedQuery[]>; ingestPerSecond: number; searchMsMean: number };
    const measureSplit = async (split: EmojiConcept["split"]): Promise<Measured> => {
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
      // Byte-identical drawings are one asset (the blob store is content-addressed: OpenMoji draws 26 pairs of concepts
      // alike, such as artist and man-artist), so a hit is right when its drawing is the concept's, whichever concept's
      // upload made it, as the direct figures count a candidate with the same vector as the right one.
      const conceptsOf = new Map<string, string[]>();
      for (const entry of ingested) conceptsOf.set(entry.assetId, [...(conceptsOf.get(entry.assetId) ?? []), entry.concept]);

      let searches = 0;
      let searchMs = 0;
      const rankOf = async (concept: string, queryKey: string, input: Record<string, unknown>, file?: Upload): Promise<SearchedQuery> => {
        const started = performance.now();
        const data = await withRetries(() => graphql(key, SEARCH, { ...input, modalities: ["IMAGE"], limit: 10 }, file));
        searchMs += performance.now() - started;
        searches++;
        const hits = data.search.hits as Hit[];
        const rank = hits.findIndex((hit) => conceptsOf.get(hit.asset.id)?.includes(concept));
        const above = hits.slice(0, rank < 0 ? hits.length : rank).map((hit) => ({ concept: conceptsOf.get(hit.asset.id)?.join(" = "), score: hit.score, snippet: hit.snippet, explain: hit.explain }));
        return { key: queryKey, rank, above, own: rank >= 0 ? hits[rank] : undefined };
      };
      const every = Math.ceil(pool.length / Math.min(pool.length, cap));
      const queries = pool.filter((_, index) => index % every === 0);
      log(`${split}: ${queries.length} text, ${queries.length * 2} image and ${queries.length} audio queries`);
      const textRanks = await inParallel(queries, concurrency, (concept) => rankOf(concept.name, concept.name, { text: concept.label }));
      const imageQueries = queries.flatMap((concept) => (["noto", "twemoji"] as const).map((style) => ({ concept, style })));
      const imageRanks = await inParallel(imageQueries, concurrency, async ({ concept, style }) =>
        rankOf(concept.name, `${concept.name}/${style}`, {}, { bytes: await renderIconPng(querySets[style], concept.name, IMAGE_SIZE), filename: `${style}.png`, mimeType: "image/png" }),
      );
      const audioRanks = await inParallel(queries, concurrency, async (concept) =>
        rankOf(concept.name, concept.name, {}, { bytes: encodeWav(await speak(concept.label, EVAL_VOICE), SAMPLE_RATE), filename: "spoken.wav", mimeType: "audio/wav" }),
      );
      const searched = { textToImage: textRanks, imageToImage: imageRanks, audioToImage: audioRanks };
      const recall = (task: Task) => recallFromRanks(searched[task].map((query) => query.rank), pool.length);
      // The direct figures over exactly the queries asked through search (all of them unless capped).
      const directOf = (task: Task) => recallOfRanks(searched[task].map((query) => directRanks[split][task][query.key]!), pool.length);
      return {
        figures: { textToImage: recall("textToImage"), imageToImage: recall("imageToImage"), audioToImage: recall("audioToImage") },
        direct: { textToImage: directOf("textToImage"), imageToImage: directOf("imageToImage"), audioToImage: directOf("audioToImage") },
        searched,
        ingestPerSecond,
        searchMsMean: searchMs / searches,
      };
    };

    const noFigures = { textToImage: none, imageToImage: none, audioToImage: none };
    const skipped: Measured = { figures: noFigures, direct: noFigures, searched: { textToImage: [], imageToImage: [], audioToImage: [] }, ingestPerSecond: 0, searchMsMean: 0 };
    const trained = splits.includes("train") ? await measureSplit("train") : skipped;
    const heldOut = splits.includes("heldout") ? await measureSplit("heldout") : skipped;
    const throughSearch: HeldOutFigures = { trainedConcepts: trained.figures, heldOutConcepts: heldOut.figures };
    const direct: HeldOutFigures = { trainedConcepts: trained.direct, heldOutConcepts: heldOut.direct };
    // Per query: where search loses a hit the model alone finds (and the other way round, for the balance).
    const tasks: Task[] = ["textToImage", "imageToImage", "audioToImage"];
    const comparison = (measured: Measured, split: EmojiConcept["split"]) =>
      Object.fromEntries(
        tasks.map((task) => {
          const searched = measured.searched[task];
          const directRank = directRanks[split][task];
          const gained = (k: number) => searched.filter((query) => query.rank >= 0 && query.rank < k && !(directRank[query.key]! < k)).length;
          return [task, { lostR1: lostAt(searched, directRank, 1).length, gainedR1: gained(1), lostR10: lostAt(searched, directRank, 10).length, gainedR10: gained(10) }];
        }),
      );
    const lossesFile = process.env.BENCH_RETRIEVAL_LOSSES;
    if (lossesFile) {
      const losses = (measured: Measured, split: EmojiConcept["split"]) =>
        tasks.flatMap((task) =>
          lostAt(measured.searched[task], directRanks[split][task], 10)
            .map((query) => ({ split, task, k: 10, directRank: directRanks[split][task][query.key], ...query }))
            .concat(
              lostAt(measured.searched[task], directRanks[split][task], 1)
                .filter((query) => query.rank >= 0)
                .map((query) => ({ split, task, k: 1, directRank: directRanks[split][task][query.key], ...query })),
            ),
        );
      await fs.writeFile(lossesFile, JSON.stringify([...losses(trained, "train"), ...losses(heldOut, "heldout")], null, 1));
      log(`losses against direct written to ${lossesFile}`);
    }
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
        directAllQueries: directAll,
        againstDirect: { trainedConcepts: comparison(trained, "train"), heldOutConcepts: comparison(heldOut, "heldout") },
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
