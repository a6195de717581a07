import { setTimeout as sleep } from "node:timers/promises";
import weaviate, { configure, Filters, type Collection, type FilterValue, type WeaviateClient } from "weaviate-client";
import type { Modality } from "../core/database.ts";
import { BatchWriter } from "./batch-writer.ts";
import { metadataPairs } from "./metadata-pairs.ts";
import { vectorId } from "./vector-identity.ts";
import type {
  HybridQuery,
  NearVectorQuery,
  SpaceDefinition,
  StoredVector,
  VectorFilter,
  VectorHit,
  UpsertOptions,
  VectorRecord,
  VectorStore,
} from "./vector-store.ts";

type Properties = {
  assetId: string;
  space: string;
  chunk: number;
  model: string;
  modality: string;
  text: string;
  tags: string[];
  metadataPairs: string[];
};

type WeaviateObject = { id: string; properties: Properties; vectors: Record<string, number[]> };

export type WeaviateOptions = {
  url: string;
  grpcPort: number;
  apiKey?: string;
  /** One collection holds every project (as tenants) and every space (as named vectors). */
  collection?: string;
  /** Objects per gRPC batch request; concurrent upserts of one project are coalesced into these. */
  batchSize?: number;
  /** Batch requests in flight per project; further objects queue and their upserts wait (backpressure). */
  maxBatchesInFlight?: number;
  /** The index of each space's named vector, set when the space is created (default `flat`: exact). */
  vectorIndex?: VectorIndexKind;
  /**
   * Copies of each project's shard, on that many nodes, set when the collection is created (default 1). Above 1,
   * async replication is on, so a node that was down catches up on what it missed.
   */
  replicationFactor?: number;
  /** How many replicas must answer each read and acknowledge each write (default `ONE`: one node down changes nothing). */
  consistencyLevel?: WeaviateConsistencyLevel;
};

export type WeaviateConsistencyLevel = "ONE" | "QUORUM" | "ALL";

export type VectorIndexKind = "flat" | "hnsw";

const RETURNED_PROPERTIES = ["assetId", "space", "chunk", "modality", "text"] as const;
/** Weaviate's batch endpoint answers these when it is overloaded; the batch is retried after a pause. */
const RETRYABLE = /429|503|resource.?exhausted|unavailable|too many|deadline|timeout|ECONNRESET/i;
const TENANT_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Projects whose tenant handle is kept (the oldest is dropped past it): a handle is only a client-side object. */
const MAX_TENANT_HANDLES = 1024;

/** Named-vector names must be GraphQL names: "image-text" becomes "image_text". */
function vectorName(space: string) {
  return space.replace(/[^A-Za-z0-9_]/g, "_");
}

function isMissingTenant(error: unknown) {
  return /tenant.*not found|no tenant|tenant.*does not exist/i.test(String((error as Error)?.message ?? error));
}

/**
 * Weaviate over gRPC (weaviate-client v3): one collection, one tenant per
 * project (Weaviate's native multi-tenancy, tenants created on first write),
 * one named vector per space, cosine distance, a flat (exact) or HNSW index
 * per tenant and space. Every call goes
 * through `tenant(projectId)`, so a query cannot reach another project.
 */
export class WeaviateVectorStore implements VectorStore {
  readonly kind = "weaviate" as const;
  private readonly collectionName: string;
  private readonly batchSize: number;
  private readonly maxBatchesInFlight: number;
  private readonly vectorIndex: VectorIndexKind;
  private readonly replicationFactor: number;
  private readonly consistencyLevel: WeaviateConsistencyLevel;
  private knownSpaces: Set<string> | null = null;
  private schemaChange: Promise<void> = Promise.resolve();
  private readonly writers = new Map<string, BatchWriter<WeaviateObject>>();
  /**
   * The collection, and per project its tenant, built once: weaviate-client builds every sub-API of a handle
   * (query, data, aggregate, config, generate, tenants...) each time one is asked for, and a search asked for
   * four (a tenant and a filter builder per call). Built on first use, not at connect: building one asks the
   * server's version, and that request failing (Weaviate down at start) would be an unhandled rejection.
   */
  private base: Collection<Properties> | undefined;
  private readonly tenants = new Map<string, Collection<Properties>>();

  private constructor(
    private readonly client: WeaviateClient,
    options: WeaviateOptions,
  ) {
    this.collectionName = options.collection ?? "TesseraVector";
    this.batchSize = options.batchSize ?? 500;
    this.maxBatchesInFlight = options.maxBatchesInFlight ?? 2;
    this.vectorIndex = options.vectorIndex ?? "flat";
    this.replicationFactor = options.replicationFactor ?? 1;
    this.consistencyLevel = options.consistencyLevel ?? "ONE";
  }

  static async connect(options: WeaviateOptions): Promise<WeaviateVectorStore> {
    const url = new URL(options.url);
    const secure = url.protocol === "https:";
    const client = await weaviate.connectToCustom({
      httpHost: url.hostname,
      httpPort: Number(url.port || (secure ? 443 : 80)),
      httpSecure: secure,
      grpcHost: url.hostname,
      grpcPort: options.grpcPort,
      grpcSecure: secure,
      authCredentials: options.apiKey ? new weaviate.ApiKey(options.apiKey) : undefined,
      timeout: { init: 5, query: 30, insert: 120 },
      // Start even while Weaviate is down: health reports it, and calls fail with its error until it is back.
      skipInitChecks: true,
    });
    return new WeaviateVectorStore(client, options);
  }

  private collection(): Collection<Properties> {
    this.base ??= this.client.collections.use<string, Properties>(this.collectionName).withConsistency(this.consistencyLevel);
    return this.base;
  }

  /** The project's tenant for queries and writes (`fresh` for a new handle: aggregations, see count). */
  private tenant(projectId: string, fresh = false) {
    if (!TENANT_NAME.test(projectId)) throw new Error(`project id ${JSON.stringify(projectId)} is not a valid tenant name`);
    if (fresh) return this.collection().withTenant(projectId);
    let handle = this.tenants.get(projectId);
    if (!handle) {
      if (this.tenants.size >= MAX_TENANT_HANDLES) this.tenants.delete(this.tenants.keys().next().value!);
      handle = this.collection().withTenant(projectId);
      this.tenants.set(projectId, handle);
    }
    return handle;
  }

  private filters(space: string | undefined, filter: VectorFilter = {}, assetId?: string): FilterValue | undefined {
    const by = this.collection().filter;
    const conditions: FilterValue[] = [];
    if (space) conditions.push(by.byProperty("space").equal(space));
    if (assetId) conditions.push(by.byProperty("assetId").equal(assetId));
    if (filter.modalities?.length) conditions.push(by.byProperty("modality").containsAny(filter.modalities));
    if (filter.tags?.length) conditions.push(by.byProperty("tags").containsAll(filter.tags));
    const pairs = filter.metadata ? metadataPairs(filter.metadata) : [];
    if (pairs.length) conditions.push(by.byProperty("metadataPairs").containsAll(pairs));
    for (const excluded of filter.excludeAssetIds ?? []) conditions.push(by.byProperty("assetId").notEqual(excluded));
    if (conditions.length === 0) return undefined;
    return conditions.length === 1 ? conditions[0] : Filters.and(...conditions);
  }

  private async loadKnownSpaces(): Promise<Set<string> | null> {
    if (this.knownSpaces) return this.knownSpaces;
    if (!(await this.client.collections.exists(this.collectionName))) return null;
    const config = await this.collection().config.get();
    this.knownSpaces = new Set(Object.keys(config.vectorizers));
    return this.knownSpaces;
  }

  /** Whether the space has a named vector; asks the server again when not (another process may have added it). */
  private async hasSpace(space: string): Promise<boolean> {
    if ((await this.loadKnownSpaces())?.has(vectorName(space))) return true;
    this.knownSpaces = null;
    return (await this.loadKnownSpaces())?.has(vectorName(space)) ?? false;
  }

  /** Schema changes are serialised: two concurrent upserts with a new space add it once. */
  async ensureSchema(spaces: SpaceDefinition[]): Promise<void> {
    const change = this.schemaChange.catch(() => {}).then(() => this.applySchema(spaces));
    this.schemaChange = change;
    await change;
  }

  private async applySchema(spaces: SpaceDefinition[]) {
    const wanted = [...new Set(spaces.map((space) => vectorName(space.name)))];
    const vectorConfig = (name: string) =>
      configure.vectors.selfProvided({
        name,
        vectorIndexConfig:
          this.vectorIndex === "flat"
            ? // Each tenant (project) has its own index per space, so a scan covers one project's vectors only:
              // exact, no graph to build on import, and new vectors are searchable as soon as they are written.
              configure.vectorIndex.flat({ distanceMetric: "cosine" })
            : configure.vectorIndex.hnsw({
                distanceMetric: "cosine",
                // Default graph (efConstruction 128, 32 links: import speed), but a wider search than the
                // default dynamic ef (from 100): recall@10 on 512-d is measured in bench/search.ts.
                efConstruction: 128,
                maxConnections: 32,
                dynamicEfMin: 200,
              }),
      });
    let known = await this.loadKnownSpaces();
    if (!known) {
      try {
        await this.client.collections.create<Properties>({
          name: this.collectionName,
          multiTenancy: configure.multiTenancy({ enabled: true, autoTenantCreation: true, autoTenantActivation: true }),
          replication: configure.replication({ factor: this.replicationFactor, asyncEnabled: this.replicationFactor > 1 }),
          properties: [
            { name: "assetId", dataType: "text", tokenization: "field", indexSearchable: false },
            { name: "space", dataType: "text", tokenization: "field", indexSearchable: false },
            { name: "chunk", dataType: "int" },
            { name: "model", dataType: "text", tokenization: "field", indexSearchable: false },
            { name: "modality", dataType: "text", tokenization: "field", indexSearchable: false },
            { name: "text", dataType: "text", tokenization: "word" },
            { name: "tags", dataType: "text[]", tokenization: "field", indexSearchable: false },
            { name: "metadataPairs", dataType: "text[]", tokenization: "field", indexSearchable: false },
          ],
          vectorizers: wanted.map(vectorConfig),
        });
      } catch (error) {
        // Another process created it first: fall through and add what is missing.
        if (!/already exists/i.test(String(error))) throw error;
      }
      this.knownSpaces = null;
      known = (await this.loadKnownSpaces()) ?? new Set();
    }
    const missing = wanted.filter((name) => !known.has(name));
    if (missing.length) {
      try {
        await this.collection().config.addVector(missing.map(vectorConfig));
      } catch (error) {
        // Another process added it between our read and our write.
        if (!/already exists/i.test(String(error))) throw error;
      }
      for (const name of missing) known.add(name);
    }
  }

  /** Weaviate's batch insert replaces an object with the same id, so `allNew` changes nothing here. */
  async upsert(projectId: string, records: VectorRecord[], options: UpsertOptions = {}): Promise<void> {
    if (records.length === 0) return;
    const spaces = [...new Set(records.map((record) => record.space))];
    const present = await Promise.all(spaces.map((space) => this.hasSpace(space)));
    const unknown = records.filter((record) => !present[spaces.indexOf(record.space)]);
    if (unknown.length) {
      await this.ensureSchema(unknown.map((record) => ({ name: record.space, dimensions: record.vector.length })));
    }
    const objects: WeaviateObject[] = records.map((record) => ({
      id: vectorId(record.assetId, record.space, record.chunk),
      properties: {
        assetId: record.assetId,
        space: record.space,
        chunk: record.chunk,
        model: record.model,
        modality: record.modality,
        text: record.text,
        tags: record.tags,
        metadataPairs: metadataPairs(record.metadata),
      },
      vectors: { [vectorName(record.space)]: Array.from(record.vector) },
    }));
    await this.writerFor(projectId).write(objects, options.signal);
  }

  /** One batch writer per tenant: concurrent upserts of a project (several ingest jobs) share its batches. */
  private writerFor(projectId: string): BatchWriter<WeaviateObject> {
    let writer = this.writers.get(projectId);
    if (!writer) {
      const tenant = this.tenant(projectId);
      writer = new BatchWriter((objects, signal) => this.sendBatch(tenant, objects, signal), this.batchSize, this.maxBatchesInFlight);
      this.writers.set(projectId, writer);
    }
    return writer;
  }

  /**
   * One batch, retried while Weaviate is overloaded. `signal`: no caller waits for it any more; it is not tried
   * again (an insertMany already sent cannot be cancelled through weaviate-client, and lands or not on its own).
   */
  private async sendBatch(tenant: Collection<Properties>, batch: WeaviateObject[], signal: AbortSignal) {
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted();
      try {
        const result = await tenant.data.insertMany(batch);
        if (!result.hasErrors) return;
        const errors = Object.values(result.errors);
        const message = errors[0]?.message ?? "unknown error";
        if (attempt < 5 && errors.every((error) => RETRYABLE.test(error.message))) {
          batch = errors.map((error) => error.object as WeaviateObject);
        } else {
          throw new Error(`Weaviate rejected ${errors.length} of ${batch.length} vectors: ${message}`);
        }
      } catch (error) {
        if (attempt >= 5 || !RETRYABLE.test(String(error))) throw error;
      }
      await sleep(100 * 2 ** attempt, undefined, { signal });
    }
  }

  async deleteAsset(projectId: string, assetId: string): Promise<number> {
    try {
      const result = await this.tenant(projectId).data.deleteMany(this.filters(undefined, {}, assetId)!);
      if (result.failed > 0) throw new Error(`Weaviate failed to delete ${result.failed} vectors of asset ${assetId}`);
      return result.successful;
    } catch (error) {
      if (isMissingTenant(error) || !(await this.loadKnownSpaces())) return 0;
      throw error;
    }
  }

  async deleteProject(projectId: string): Promise<void> {
    this.tenants.delete(projectId);
    if (!(await this.loadKnownSpaces())) return;
    try {
      await this.collection().tenants.remove([{ name: projectId }]);
    } catch (error) {
      if (!isMissingTenant(error)) throw error;
    }
  }

  async nearVector(projectId: string, query: NearVectorQuery): Promise<VectorHit[]> {
    if (!(await this.hasSpace(query.space))) return [];
    try {
      const result = await this.tenant(projectId).query.nearVector(Array.from(query.vector), {
        targetVector: vectorName(query.space),
        limit: query.limit,
        // No space condition: only this space's objects are in its named vector's index. An always-true
        // filter would still switch Weaviate to filtered search (ACORN), which costs recall.
        filters: this.filters(undefined, query.filter),
        returnProperties: [...RETURNED_PROPERTIES],
        returnMetadata: ["distance"],
      });
      return result.objects.map((object) => this.toHit(object.properties, 1 - (object.metadata?.distance ?? 1)));
    } catch (error) {
      if (isMissingTenant(error)) return [];
      throw error;
    }
  }

  async hybrid(projectId: string, query: HybridQuery): Promise<VectorHit[]> {
    if (!query.text.trim()) return this.nearVector(projectId, query);
    if (!(await this.hasSpace(query.space))) return [];
    try {
      const result = await this.tenant(projectId).query.hybrid(query.text, {
        alpha: query.alpha,
        vector: Array.from(query.vector),
        targetVector: vectorName(query.space),
        fusionType: "RelativeScore",
        queryProperties: ["text"],
        limit: query.limit,
        filters: this.filters(query.space, query.filter),
        returnProperties: [...RETURNED_PROPERTIES],
        returnMetadata: ["score"],
      });
      return result.objects.map((object) => this.toHit(object.properties, object.metadata?.score ?? 0));
    } catch (error) {
      if (isMissingTenant(error)) return [];
      throw error;
    }
  }

  async vectorsOf(projectId: string, assetId: string): Promise<StoredVector[]> {
    const known = await this.loadKnownSpaces();
    if (!known) return [];
    try {
      const result = await this.tenant(projectId).query.fetchObjects({
        filters: this.filters(undefined, {}, assetId),
        includeVector: true,
        // What a StoredVector holds, not the tags and metadata pairs: every asset query starts here (issue #20).
        returnProperties: ["space", "chunk", "model", "text"],
        limit: 10_000,
      });
      return result.objects
        .map((object) => {
          const vector = (object.vectors as Record<string, number[]>)[vectorName(object.properties.space)];
          return {
            space: object.properties.space,
            chunk: object.properties.chunk,
            model: object.properties.model,
            text: object.properties.text ?? "",
            vector: Float32Array.from(vector ?? []),
          };
        })
        .sort((a, b) => a.space.localeCompare(b.space) || a.chunk - b.chunk);
    } catch (error) {
      if (isMissingTenant(error)) return [];
      throw error;
    }
  }

  async count(projectId: string, where: { assetId?: string; space?: string } = {}): Promise<number> {
    if (!(await this.loadKnownSpaces())) return 0;
    try {
      // A fresh handle: an aggregate API asks the server's version when it is built, and keeps the answer (a
      // failure too, if Weaviate was down then).
      const result = await this.tenant(projectId, true).aggregate.overAll({ filters: this.filters(where.space, {}, where.assetId) });
      return result.totalCount;
    } catch (error) {
      if (isMissingTenant(error)) return 0;
      throw error;
    }
  }

  async health(): Promise<void> {
    if (!(await this.client.isReady())) throw new Error("Weaviate is not ready");
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  private toHit(properties: Partial<Properties>, score: number): VectorHit {
    return {
      assetId: properties.assetId!,
      space: properties.space!,
      chunk: properties.chunk ?? 0,
      modality: properties.modality as Modality,
      text: properties.text ?? "",
      score,
    };
  }
}
