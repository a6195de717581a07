import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as lancedb from "@lancedb/lancedb";
import type { Modality } from "../core/database.ts";
import { metadataPairs } from "./metadata-pairs.ts";
import { vectorId } from "./vector-identity.ts";
import type {
  HybridQuery,
  NearVectorQuery,
  SpaceDefinition,
  StoredVector,
  VectorFilter,
  VectorHit,
  VectorRecord,
  UpsertOptions,
  VectorStore,
} from "./vector-store.ts";

/**
 * Arrow's classes as LanceDB loads them (its CommonJS build). The ESM build's are other classes: a table made of
 * them fails LanceDB's instanceof checks on every write, and is taken apart and rebuilt there.
 */
const { Field, FixedSizeList, Float32, Int32, List, RecordBatch, Schema, Struct, Table, Utf8, makeData } = createRequire(import.meta.url)(
  "apache-arrow",
) as typeof import("apache-arrow");

/**
 * Strings as an Arrow Utf8 column: their UTF-8 bytes end to end and where each ends. Built directly: Arrow's
 * builders (vectorFromArray) compile a validity function with `new Function` for every column they build.
 */
function utf8Column(values: string[]) {
  const encoded = values.map((value) => Buffer.from(value, "utf8"));
  const valueOffsets = new Int32Array(values.length + 1);
  encoded.forEach((bytes, index) => (valueOffsets[index + 1] = valueOffsets[index]! + bytes.length));
  return makeData({ type: new Utf8(), length: values.length, nullCount: 0, valueOffsets, data: Buffer.concat(encoded) });
}

/** Lists of strings as an Arrow List<Utf8> column of `type`: every list's strings in one Utf8 child. */
function utf8ListColumn(type: InstanceType<typeof List<InstanceType<typeof Utf8>>>, lists: string[][]) {
  const valueOffsets = new Int32Array(lists.length + 1);
  lists.forEach((list, index) => (valueOffsets[index + 1] = valueOffsets[index]! + list.length));
  return makeData({ type, length: lists.length, nullCount: 0, valueOffsets, child: utf8Column(lists.flat()) });
}

/** How each cached table forgets its kept schema (withSchemaKept). */
const schemaForgetters = new WeakMap<lancedb.Table, () => void>();

/**
 * The table with its schema fetched once and kept: LanceDB's `add` and `mergeInsert` ask for it on every write (a
 * call into the native table and an IPC decode, ~0.15 ms of CPU), only to look for embedding functions in its
 * metadata. This store never alters a table's schema; a write that fails forgets the kept one (forgetSchema: the
 * table may have been re-created elsewhere), so the next write fetches it again.
 */
function withSchemaKept(table: lancedb.Table): lancedb.Table {
  const fetchSchema = table.schema.bind(table);
  let kept: ReturnType<typeof fetchSchema> | null = null;
  table.schema = () => {
    if (!kept) {
      kept = fetchSchema();
      kept.catch(() => (kept = null));
    }
    return kept;
  };
  schemaForgetters.set(table, () => (kept = null));
  return table;
}

function forgetSchema(table: lancedb.Table) {
  schemaForgetters.get(table)?.();
}

const OPTIMIZE_EVERY_WRITES = 100;
const RETURNED_COLUMNS = ["asset_id", "space", "chunk", "modality", "text"];
const VECTOR_INDEX_NAME = "vector_idx";
const INDEX_WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), "lancedb-index-worker.mjs");
const runFile = promisify(execFile);
/** How long a process trusts what it learnt about a table's index and a project's size (another process may build it). */
const INDEX_STATE_TTL_MS = 30_000;
/** A failed index build is tried again after this long, on a later write. */
const INDEX_RETRY_MS = 60_000;

export type LanceDbIndexOptions = {
  /** A space's table gets an IVF_PQ index once it holds this many rows; 0: never (every search exact). */
  indexMinRows?: number;
  /** IVF partitions an indexed search probes. */
  nprobes?: number;
  /** Candidates taken from the compressed index, as a multiple of the limit, then ranked by exact distance. */
  refineFactor?: number;
};

/** What a process knows of one table's vector index. */
type IndexState = {
  /** Whether the table has a vector index, as of `checkedAt`. */
  indexed: boolean;
  /** Rows the table held when the index was trained (its partitions are about √ of it). */
  trainedRows: number;
  checkedAt: number;
  /** A build in flight (this process), so writes do not start a second one. */
  building: Promise<void> | null;
  failedAt: number;
  /** Rows per project (filter), cached: a project smaller than the threshold is searched exactly. */
  projectRows: Map<string, { rows: number; at: number }>;
  /** The table's rows as last counted for indexInBackground, when, and the rows this process wrote since. */
  countedRows: number;
  countedAt: number;
  writtenSinceCount: number;
};

function sqlString(value: string) {
  return `'${value.replaceAll("'", "''")}'`;
}

function sqlList(values: string[]) {
  return `[${values.map(sqlString).join(", ")}]`;
}

/** The WHERE clause of every query: the project first, always, then the caller's filter. */
function scopedWhere(projectId: string, filter: VectorFilter = {}, extra: string[] = []): string {
  const clauses = [`project_id = ${sqlString(projectId)}`, ...extra];
  if (filter.modalities?.length) clauses.push(`modality IN (${filter.modalities.map(sqlString).join(", ")})`);
  if (filter.tags?.length) clauses.push(`array_has_all(tags, ${sqlList(filter.tags)})`);
  const pairs = filter.metadata ? metadataPairs(filter.metadata) : [];
  if (pairs.length) clauses.push(`array_has_all(metadata_pairs, ${sqlList(pairs)})`);
  if (filter.excludeAssetIds?.length) clauses.push(`asset_id NOT IN (${filter.excludeAssetIds.map(sqlString).join(", ")})`);
  return clauses.join(" AND ");
}

export function groupBySpace<T extends { space: string }>(items: T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const group = groups.get(item.space);
    if (group) group.push(item);
    else groups.set(item.space, [item]);
  }
  return groups;
}

/** Min-max to [0, 1]; a single score (or all equal) counts as 1. */
function normalise(scores: number[]): number[] {
  const max = Math.max(...scores);
  const min = Math.min(...scores);
  return scores.map((score) => (max === min ? 1 : (score - min) / (max - min)));
}

/**
 * The embedded store: LanceDB files under DATA_DIR/vectors, one table per
 * space (its vectors have one width). Rows carry their project, and every
 * query is built by `scopedWhere`, which puts the project first. Vector search
 * is an exact (flat) cosine scan with the filter applied before it, until a
 * space's table passes `indexMinRows`: then an IVF_PQ index is built in the
 * background and a project of that size is searched through it (nprobes,
 * refined by exact distance), the filter still applied first; hybrid
 * search fuses LanceDB's BM25 full-text search with it the way Weaviate's
 * relativeScoreFusion does, so both adapters rank alike.
 */
export class LanceDbVectorStore implements VectorStore {
  readonly kind = "embedded" as const;
  private readonly tables = new Map<string, Promise<lancedb.Table>>();
  /** LanceDB commits are optimistic; writes to one table are queued here so concurrent jobs do not conflict. */
  private readonly writeQueues = new Map<string, Promise<unknown>>();
  /** Every write adds a fragment and a version; compaction keeps scans fast and brings new rows into the BM25 index. */
  private readonly writesSinceOptimize = new Map<string, number>();

  private readonly indexStates = new Map<string, IndexState>();
  private readonly indexMinRows: number;
  private readonly nprobes: number;
  private readonly refineFactor: number;
  /** The last background index build's failure per space, for health checks and tests. */
  readonly indexErrors = new Map<string, unknown>();

  private constructor(
    private readonly dir: string,
    private readonly db: lancedb.Connection,
    options: LanceDbIndexOptions,
  ) {
    this.indexMinRows = options.indexMinRows ?? 50_000;
    this.nprobes = options.nprobes ?? 40;
    this.refineFactor = options.refineFactor ?? 50;
  }

  static async open(dir: string, options: LanceDbIndexOptions = {}): Promise<LanceDbVectorStore> {
    await fs.mkdir(dir, { recursive: true });
    // Consistency interval 0: every read sees what other processes (a separate worker) committed.
    const db = await lancedb.connect(dir, { readConsistencyInterval: 0 });
    return new LanceDbVectorStore(dir, db, options);
  }

  private tableName(space: string) {
    return `space_${space.replace(/[^\w-]/g, "_")}`;
  }

  private schemaFor(dimensions: number) {
    const text = () => new Utf8();
    return new Schema([
      new Field("id", text(), false),
      new Field("project_id", text(), false),
      new Field("asset_id", text(), false),
      new Field("space", text(), false),
      new Field("chunk", new Int32(), false),
      new Field("model", text(), false),
      new Field("modality", text(), false),
      new Field("text", text(), false),
      new Field("tags", new List(new Field("item", text(), true)), false),
      new Field("metadata_pairs", new List(new Field("item", text(), true)), false),
      new Field("vector", new FixedSizeList(dimensions, new Field("item", new Float32(), true)), false),
    ]);
  }

  /** The space's table, or null when nothing was ever written to it. */
  private async existingTable(space: string): Promise<lancedb.Table | null> {
    const cached = this.tables.get(space);
    if (cached) return cached;
    const name = this.tableName(space);
    if (!(await this.db.tableNames()).includes(name)) return null;
    return this.cacheTable(space, this.db.openTable(name));
  }

  private cacheTable(space: string, opening: Promise<lancedb.Table>) {
    opening = opening.then(withSchemaKept);
    this.tables.set(space, opening);
    opening.catch(() => this.tables.delete(space));
    return opening;
  }

  private async tableFor(space: SpaceDefinition): Promise<lancedb.Table> {
    const existing = await this.existingTable(space.name);
    if (existing) return existing;
    return this.cacheTable(
      space.name,
      (async () => {
        const table = await this.db.createEmptyTable(this.tableName(space.name), this.schemaFor(space.dimensions), {
          existOk: true,
        });
        // BM25 index; rows added later are searched too (unindexed rows are scanned) until the next optimize.
        await table.createIndex("text", { config: lancedb.Index.fts(), replace: false }).catch(async (error) => {
          if (!(await table.listIndices()).some((index) => index.columns.includes("text"))) throw error;
        });
        return table;
      })(),
    );
  }

  private async allTables(): Promise<lancedb.Table[]> {
    const names = (await this.db.tableNames()).filter((name) => name.startsWith("space_"));
    return Promise.all(names.map((name) => this.db.openTable(name)));
  }

  private serialWrite<T>(table: string, write: () => Promise<T>): Promise<T> {
    const previous = this.writeQueues.get(table) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(write);
    this.writeQueues.set(table, next);
    return next;
  }

  async ensureSchema(spaces: SpaceDefinition[]): Promise<void> {
    await Promise.all(spaces.map((space) => this.tableFor(space)));
  }

  async upsert(projectId: string, records: VectorRecord[], options: UpsertOptions = {}): Promise<void> {
    for (const [space, spaceRecords] of groupBySpace(records)) {
      const dimensions = spaceRecords[0]!.vector.length;
      const table = await this.tableFor({ name: space, dimensions });
      const rows = this.rowsTable(projectId, spaceRecords, dimensions);
      // Vector ids are derived from (asset, space, chunk) alone; the project is part of the match
      // so one project can never overwrite another's rows.
      await this.serialWrite(space, () =>
        (options.allNew
          ? table.add(rows)
          : table.mergeInsert(["id", "project_id"]).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(rows)
        ).catch((error: unknown) => {
          forgetSchema(table);
          throw error;
        }),
      );
      await this.optimizeNowAndThen(space, table);
      this.indexState(space).writtenSinceCount += spaceRecords.length;
      this.indexInBackground(space, table);
    }
  }

  /**
   * One space's records as an Arrow table in the space's schema, built column by column, the vectors copied once
   * into one Float32Array: given rows of plain objects (each vector an Array of numbers, as LanceDB takes them),
   * LanceDB converts them value by value on the event loop, against the table's schema.
   */
  private rowsTable(projectId: string, records: VectorRecord[], dimensions: number) {
    const schema = this.schemaFor(dimensions);
    const vectors = new Float32Array(records.length * dimensions);
    records.forEach((record, row) => {
      if (record.vector.length !== dimensions) {
        throw new Error(`vectors of one space must have one width: ${record.vector.length}, not ${dimensions} (space ${record.space})`);
      }
      vectors.set(record.vector, row * dimensions);
    });
    const typeOf = (name: string) => schema.fields.find((field) => field.name === name)!.type;
    const columns: Record<string, ReturnType<typeof makeData>> = {
      id: utf8Column(records.map((record) => vectorId(record.assetId, record.space, record.chunk))),
      project_id: utf8Column(records.map(() => projectId)),
      asset_id: utf8Column(records.map((record) => record.assetId)),
      space: utf8Column(records.map((record) => record.space)),
      chunk: makeData({ type: new Int32(), length: records.length, data: Int32Array.from(records, (record) => record.chunk) }),
      model: utf8Column(records.map((record) => record.model)),
      modality: utf8Column(records.map((record) => record.modality)),
      text: utf8Column(records.map((record) => record.text)),
      tags: utf8ListColumn(typeOf("tags"), records.map((record) => record.tags)),
      metadata_pairs: utf8ListColumn(typeOf("metadata_pairs"), records.map((record) => metadataPairs(record.metadata))),
      vector: makeData({
        type: typeOf("vector") as InstanceType<typeof FixedSizeList<InstanceType<typeof Float32>>>,
        length: records.length,
        nullCount: 0,
        child: makeData({ type: new Float32(), length: vectors.length, data: vectors }),
      }),
    };
    const children = schema.fields.map((field) => columns[field.name]!);
    return new Table([new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: records.length, nullCount: 0, children }))]);
  }

  private indexState(space: string): IndexState {
    let state = this.indexStates.get(space);
    if (!state) {
      state = { indexed: false, trainedRows: 0, checkedAt: 0, building: null, failedAt: 0, projectRows: new Map(), countedRows: 0, countedAt: 0, writtenSinceCount: 0 };
      this.indexStates.set(space, state);
    }
    return state;
  }

  /** Whether the space's table has a vector index: asked of LanceDB at most every INDEX_STATE_TTL_MS. */
  private async isIndexed(space: string, table: lancedb.Table): Promise<boolean> {
    const state = this.indexState(space);
    if (Date.now() - state.checkedAt < INDEX_STATE_TTL_MS) return state.indexed;
    // listIndices, not indexStats: the stats carry every centroid.
    const index = (await table.listIndices()).find((candidate) => candidate.name === VECTOR_INDEX_NAME);
    state.indexed = index !== undefined;
    // Partitions are not listed: first seen, the rows it covers stand for what it was trained on (√rows partitions).
    if (index && state.trainedRows === 0) state.trainedRows = index.numIndexedRows ?? 0;
    state.checkedAt = Date.now();
    return state.indexed;
  }

  /**
   * Past `indexMinRows`, builds the space's IVF_PQ index, and builds it again once the table has grown fourfold
   * since (its partitions, √ of the rows it was trained on, would hold twice as many rows each). Never awaited by
   * a write or a query: a child process at low priority trains it, and searches scan exactly until it is committed.
   * Rows added after a build are searched too (LanceDB scans unindexed rows) and folded in by `optimize`.
   */
  private indexInBackground(space: string, table: lancedb.Table) {
    if (this.indexMinRows <= 0) return;
    const state = this.indexState(space);
    if (state.building || Date.now() - state.failedAt < INDEX_RETRY_MS) return;
    // The table is counted at most every INDEX_STATE_TTL_MS (other processes write too), sooner once what this
    // process wrote since could take it past the threshold: a count on every write cost a call into LanceDB each.
    const buildsAt = state.indexed ? Math.max(state.trainedRows, this.indexMinRows) * 4 : this.indexMinRows;
    const mayBuild = state.countedRows + state.writtenSinceCount >= buildsAt;
    if (!mayBuild && Date.now() - state.countedAt < INDEX_STATE_TTL_MS) return;
    state.building = (async () => {
      const writtenBefore = state.writtenSinceCount;
      const rows = await table.countRows();
      Object.assign(state, { countedRows: rows, countedAt: Date.now(), writtenSinceCount: state.writtenSinceCount - writtenBefore });
      if (rows < this.indexMinRows) return;
      const indexed = await this.isIndexed(space, table);
      if (indexed && rows < Math.max(state.trainedRows, this.indexMinRows) * 4) return;
      await this.buildIndex(table, rows);
      state.indexed = true;
      state.trainedRows = rows;
      state.checkedAt = Date.now();
      this.indexErrors.delete(space);
    })()
      .catch((error) => {
        state.failedAt = Date.now();
        this.indexErrors.set(space, error);
      })
      .finally(() => {
        state.building = null;
      });
  }

  /** Trains and commits the index in a child process at low priority (lancedb-index-worker.mjs says why). */
  private async buildIndex(table: lancedb.Table, rows: number) {
    const job = { dir: this.dir, table: table.name, column: "vector", name: VECTOR_INDEX_NAME, numPartitions: Math.max(1, Math.round(Math.sqrt(rows))) };
    const { stdout } = await runFile(process.execPath, [INDEX_WORKER, JSON.stringify(job)], { maxBuffer: 1 << 20 }).catch((error) => {
      throw new Error(`vector index build of ${table.name} failed: ${String(error.stdout || error.stderr || error.message).slice(0, 500)}`);
    });
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { ok?: boolean; error?: string };
    if (!result.ok) throw new Error(`vector index build of ${table.name} failed: ${result.error ?? stdout.slice(0, 500)}`);
  }

  /** Waits for a background index build this process started, if any (tests, benches). */
  async indexSettled(space: string): Promise<void> {
    await this.indexStates.get(space)?.building;
  }

  /**
   * Builds (or rebuilds) the space's vector index now, whatever its size, and waits for it: for benches and
   * operators; the store itself indexes in the background past `indexMinRows`.
   */
  async buildVectorIndex(space: string): Promise<boolean> {
    const table = await this.existingTable(space);
    if (!table) return false;
    const state = this.indexState(space);
    await state.building;
    const rows = await table.countRows();
    await this.buildIndex(table, rows);
    Object.assign(state, { indexed: true, trainedRows: rows, checkedAt: Date.now() });
    return true;
  }

  /**
   * Whether a query goes through the index: the table has one and the query's project, narrowed by its filter,
   * holds at least `indexMinRows` rows. A smaller project or a narrow filter is scanned exactly: its rows are few,
   * and the few partitions an IVF search probes could hold fewer than `limit` of them. The count is cached per
   * project and filter, without the excluded assets (an asset query excludes itself: a different filter each time).
   */
  private async useIndex(space: string, table: lancedb.Table, projectId: string, filter: VectorFilter = {}): Promise<boolean> {
    if (this.indexMinRows <= 0 || !(await this.isIndexed(space, table))) return false;
    const state = this.indexState(space);
    const where = scopedWhere(projectId, { ...filter, excludeAssetIds: undefined });
    const cached = state.projectRows.get(where);
    if (cached && Date.now() - cached.at < INDEX_STATE_TTL_MS) return cached.rows >= this.indexMinRows;
    const rows = await table.countRows(where);
    if (state.projectRows.size > 10_000) state.projectRows.clear();
    state.projectRows.set(where, { rows, at: Date.now() });
    return rows >= this.indexMinRows;
  }

  /** Whether a nearVector of this project (and filter) in the space would go through the ANN index now. */
  async usesIndex(projectId: string, space: string, filter?: VectorFilter): Promise<boolean> {
    const table = await this.existingTable(space);
    return table !== null && this.useIndex(space, table, projectId, filter);
  }

  /** The vector half of every search: exact below the threshold, the IVF_PQ index with refinement above. */
  private async vectorQuery(table: lancedb.Table, projectId: string, query: NearVectorQuery, limit: number) {
    const { space, vector, filter } = query;
    let search = table.vectorSearch(Array.from(vector)).distanceType("cosine").where(scopedWhere(projectId, filter));
    search = (await this.useIndex(space, table, projectId, filter))
      ? search.nprobes(this.nprobes).refineFactor(this.refineFactor)
      : search.bypassVectorIndex();
    return search.select([...RETURNED_COLUMNS, "_distance"]).limit(limit).toArray();
  }

  private async optimizeNowAndThen(space: string, table: lancedb.Table) {
    const writes = (this.writesSinceOptimize.get(space) ?? 0) + 1;
    this.writesSinceOptimize.set(space, writes % OPTIMIZE_EVERY_WRITES);
    if (writes < OPTIMIZE_EVERY_WRITES) return;
    // Old versions are kept a minute, so a reader in another process never loses the files it is reading.
    await this.serialWrite(space, () => table.optimize({ cleanupOlderThan: new Date(Date.now() - 60_000) }));
  }

  async deleteAsset(projectId: string, assetId: string): Promise<number> {
    let deleted = 0;
    for (const table of await this.allTables()) {
      const where = scopedWhere(projectId, {}, [`asset_id = ${sqlString(assetId)}`]);
      const count = await table.countRows(where);
      if (count === 0) continue;
      await this.serialWrite(table.name.slice("space_".length), () => table.delete(where));
      deleted += count;
    }
    return deleted;
  }

  async deleteProject(projectId: string): Promise<void> {
    for (const table of await this.allTables()) {
      await this.serialWrite(table.name.slice("space_".length), () => table.delete(scopedWhere(projectId)));
    }
  }

  async nearVector(projectId: string, query: NearVectorQuery): Promise<VectorHit[]> {
    const table = await this.existingTable(query.space);
    if (!table) return [];
    const rows = await this.vectorQuery(table, projectId, query, query.limit);
    return rows.map((row) => this.toHit(row, 1 - Number(row._distance)));
  }

  async hybrid(projectId: string, query: HybridQuery): Promise<VectorHit[]> {
    const text = query.text.trim();
    if (query.alpha >= 1 || !text) return this.nearVector(projectId, query);
    const table = await this.existingTable(query.space);
    if (!table) return [];
    const candidates = Math.max(query.limit * 2, 20);
    const where = scopedWhere(projectId, query.filter);
    const [vectorRows, keywordRows] = await Promise.all([
      query.alpha > 0 ? this.vectorQuery(table, projectId, query, candidates) : Promise.resolve([]),
      table
        .query()
        .fullTextSearch(text, { columns: ["text"] })
        .where(where)
        .select([...RETURNED_COLUMNS, "_score"])
        .limit(candidates)
        .toArray(),
    ]);
    // Relative score fusion: each list min-max normalised, then weighted by alpha.
    const fused = new Map<string, { row: any; score: number }>();
    const add = (rows: any[], scores: number[], weight: number) => {
      const normalised = normalise(scores);
      rows.forEach((row, index) => {
        const key = `${row.asset_id}/${row.chunk}`;
        const entry = fused.get(key) ?? { row, score: 0 };
        entry.score += weight * normalised[index]!;
        fused.set(key, entry);
      });
    };
    add(vectorRows, vectorRows.map((row) => 1 - Number(row._distance)), query.alpha);
    add(keywordRows, keywordRows.map((row) => Number(row._score)), 1 - query.alpha);
    return [...fused.values()]
      .sort((a, b) => b.score - a.score)
      .slice(0, query.limit)
      .map(({ row, score }) => this.toHit(row, score));
  }

  async vectorsOf(projectId: string, assetId: string): Promise<StoredVector[]> {
    const result: StoredVector[] = [];
    for (const table of await this.allTables()) {
      const rows = await table
        .query()
        .where(scopedWhere(projectId, {}, [`asset_id = ${sqlString(assetId)}`]))
        .select(["space", "chunk", "model", "text", "vector"])
        .toArray();
      for (const row of rows) {
        result.push({
          space: row.space,
          chunk: row.chunk,
          model: row.model,
          text: row.text,
          vector: Float32Array.from(row.vector.toArray()),
        });
      }
    }
    return result.sort((a, b) => a.space.localeCompare(b.space) || a.chunk - b.chunk);
  }

  async count(projectId: string, where: { assetId?: string; space?: string } = {}): Promise<number> {
    const tables = where.space
      ? [await this.existingTable(where.space)].filter((table): table is lancedb.Table => table !== null)
      : await this.allTables();
    const extra = where.assetId ? [`asset_id = ${sqlString(where.assetId)}`] : [];
    const counts = await Promise.all(tables.map((table) => table.countRows(scopedWhere(projectId, {}, extra))));
    return counts.reduce((sum, count) => sum + count, 0);
  }

  async health(): Promise<void> {
    await fs.access(this.dir, fs.constants.W_OK);
    await this.db.tableNames();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.writeQueues.values());
    // An index build in flight is not waited for: it may take minutes, and one cut short commits nothing (the next
    // write starts it again).
    this.db.close();
  }

  private toHit(row: any, score: number): VectorHit {
    return {
      assetId: row.asset_id,
      space: row.space,
      chunk: row.chunk,
      modality: row.modality as Modality,
      text: row.text,
      score,
    };
  }
}
