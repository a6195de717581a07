/**
 * `npm run bench -- relevance`: search quality with the DEFAULT settings (issue #21). A mixed corpus
 * (bench/fixtures/relevance/corpus.ts: texts, signs and a receipt read by OCR, emoji drawings for the
 * demo image-text model, espeak-ng speech in several voices, videos with on-screen text and speech,
 * PDFs) is ingested through GraphQL into a fresh project and the real worker path; then every judged
 * query goes through `search` with no weights and no `hybrid`, `limit: 10`; only the cross-modal queries
 * that ask for pictures (text -> image, audio -> image on the demo model) say `modalities: [IMAGE]`.
 * Ends with one JSON line: success@1, MRR and nDCG@10 overall and per category.
 *
 * BENCH_RELEVANCE_INPUT: JSON merged into every SearchInput (e.g. '{"hybrid":{"alpha":0.5}}') to compare
 * other settings. BENCH_RELEVANCE_KEEP=<file>: keep the project and its data directory and write where
 * they are to <file>; a later run with the same file reuses them instead of ingesting again (for tuning).
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
import { corpusItems, judgedQueries, relevanceFigures, type QueryOutcome } from "./fixtures/relevance/corpus.ts";
import { benchGraphql } from "./fixtures/bench-graphql.ts";

const log = (message: string) => process.stderr.write(`[bench relevance] ${message}\n`);

const INGEST = `mutation ($input: IngestInput!) { ingest(input: $input) { asset { id } job { id } } }`;
const SEARCH = `query ($input: SearchInput!) { search(input: $input) { hits { score asset { id } } } }`;

type Kept = { dataDir: string; key: string; projectId: string; assets: Record<string, string>; queuePrefix: string };

async function inParallel<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]!);
      }
    }),
  );
  return results;
}

export default async function relevanceBench() {
  const keepFile = process.env.BENCH_RELEVANCE_KEEP;
  const extraInput = JSON.parse(process.env.BENCH_RELEVANCE_INPUT ?? "{}") as Record<string, unknown>;
  const kept: Kept | undefined = keepFile ? await fs.readFile(keepFile, "utf8").then((text) => JSON.parse(text) as Kept).catch(() => undefined) : undefined;
  const dataDir = kept?.dataDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), "tessera-bench-relevance-")));
  const queuePrefix = kept?.queuePrefix ?? `bench-relevance-${randomUUID().slice(0, 8)}`;
  // No reconciler: it re-queues stuck assets of every project in the database, including another bench's.
  const config = loadConfig({ ...process.env, DATA_DIR: dataDir, QUEUE_PREFIX: queuePrefix, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn", RECONCILE_INTERVAL_MS: "0" });
  await applyMigrations(config.DATABASE_URL);
  const app = await createAppContext(config, createLogger(config.LOG_LEVEL));
  const gateway = createGateway(app);
  const address = await gateway.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${address.port}/graphql`;
  const workers = startWorkerPool(app);
  let projectId = kept?.projectId;
  try {
    const graphql = benchGraphql(url);

    let key = kept?.key;
    let assets = kept?.assets;
    if (!key || !assets) {
      const created = await createApiKey(app.db, `bench-relevance-${randomUUID().slice(0, 8)}`);
      key = created.key;
      projectId = created.project.id;
      const items = corpusItems();
      log(`ingesting ${items.length} assets through GraphQL (${config.WEAVIATE_URL ? "weaviate" : "embedded store"})`);
      const started = performance.now();
      const ingested = await inParallel(items, 4, async (item) => {
        const made = await item.make();
        const data = "text" in made ? await graphql(key!, INGEST, { text: made.text, metadata: { corpusId: item.id } }) : await graphql(key!, INGEST, { metadata: { corpusId: item.id } }, made.file);
        return { id: item.id, assetId: data.ingest.asset.id as string, jobId: data.ingest.job.id as string };
      });
      const jobIds = ingested.map((entry) => entry.jobId);
      for (;;) {
        const pending = await app.db.job.count({ where: { id: { in: jobIds }, status: { notIn: ["SUCCEEDED", "FAILED"] } } });
        if (pending === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const failed = await app.db.job.findMany({ where: { id: { in: jobIds }, status: "FAILED" }, select: { error: true } });
      if (failed.length) throw new Error(`${failed.length} ingest jobs failed: ${failed.map((job) => JSON.stringify(job.error)).join("; ")}`);
      log(`ingested in ${Math.round((performance.now() - started) / 1000)} s`);
      assets = Object.fromEntries(ingested.map((entry) => [entry.id, entry.assetId]));
      if (keepFile) await fs.writeFile(keepFile, JSON.stringify({ dataDir, key, projectId, assets, queuePrefix } satisfies Kept));
    } else {
      log(`reusing the corpus kept in ${keepFile}`);
    }
    const corpusIdOf = new Map(Object.entries(assets).map(([id, assetId]) => [assetId, id]));

    const queries = judgedQueries();
    log(`${queries.length} judged queries, default settings${Object.keys(extraInput).length ? ` + ${JSON.stringify(extraInput)}` : ""}`);
    const searchStarted = performance.now();
    const outcomes: QueryOutcome[] = await inParallel(queries, 4, async (query) => {
      const input = { ...extraInput, limit: 10, ...(query.modalities ? { modalities: query.modalities } : {}) };
      const data = "text" in query.query ? await graphql(key!, SEARCH, { ...input, text: query.query.text }) : await graphql(key!, SEARCH, input, await query.query.file());
      const ranked = (data.search.hits as Array<{ asset: { id: string } }>).map((hit) => corpusIdOf.get(hit.asset.id) ?? hit.asset.id);
      return { query, ranked };
    });
    const searchMsMean = (performance.now() - searchStarted) / queries.length;
    for (const { query, ranked } of outcomes) {
      const best = Math.max(...Object.values(query.relevant));
      if (query.relevant[ranked[0] ?? ""] !== best) {
        log(`miss ${query.id} (${query.category}) "${"text" in query.query ? query.query.text : "file"}": got ${ranked.slice(0, 3).join(", ")}; want ${Object.keys(query.relevant).join("|")} at ${ranked.findIndex((id) => query.relevant[id] === best) + 1}`);
      }
    }
    const figures = relevanceFigures(outcomes);
    console.log(
      JSON.stringify({
        bench: "relevance",
        store: config.WEAVIATE_URL ? "weaviate" : "embedded",
        settings: Object.keys(extraInput).length ? extraInput : "default",
        assets: Object.keys(assets).length,
        ...figures,
        issueCases: Object.fromEntries(outcomes.filter(({ query }) => query.issue).map(({ query, ranked }) => [query.id, ranked.slice(0, 3)])),
        target: { success1: 0.8, met: figures.success1 >= 0.8 },
        searchMsMean: Math.round(searchMsMean * 10) / 10,
      }),
    );
  } finally {
    if (!keepFile && projectId) await app.vectorStore.deleteProject(projectId).catch(() => {});
    await workers.close();
    await gateway.close();
    await app.close();
    if (!keepFile) await fs.rm(dataDir, { recursive: true, force: true });
  }
}
