import type { Modality } from "../core/database.ts";

/** A named vector space: vectors are comparable only within one space. */
export type SpaceDefinition = { name: string; dimensions: number };

/** One vector of one asset in one space. (project, asset, space, chunk) is its identity: upserting it again replaces it. */
export type VectorRecord = {
  assetId: string;
  space: string;
  /** 0 for the whole asset; chunk, line or frame index otherwise. */
  chunk: number;
  vector: ArrayLike<number>;
  model: string;
  modality: Modality;
  /** The text this vector stands for (a text chunk, OCR lines, a transcript span): snippets and BM25. */
  text: string;
  tags: string[];
  metadata: Record<string, unknown>;
};

/** Narrows a query; every condition must hold. */
export type VectorFilter = {
  /** The asset is one of these modalities. */
  modalities?: Modality[];
  /** The asset carries every one of these tags. */
  tags?: string[];
  /** Equality per key; nested keys as dotted paths (`{"camera.make": "Canon"}`); an array value in the asset matches any of its elements. */
  metadata?: Record<string, unknown>;
  /** Leave these assets out (an asset query does not find itself). */
  excludeAssetIds?: string[];
};

export type NearVectorQuery = {
  space: string;
  vector: ArrayLike<number>;
  limit: number;
  filter?: VectorFilter;
};

/** BM25 over `text` mixed with vector similarity: alpha 1 is vectors only, 0 is BM25 only. */
export type HybridQuery = NearVectorQuery & { text: string; alpha: number };

export type VectorHit = {
  assetId: string;
  space: string;
  chunk: number;
  modality: Modality;
  text: string;
  /** Higher is better. nearVector: cosine similarity; hybrid: alpha-weighted sum of min-max normalised BM25 and vector scores, in [0, 1]. */
  score: number;
};

export type StoredVector = { space: string; chunk: number; model: string; text: string; vector: Float32Array };

/** How an upsert is made: see VectorStore.upsert. */
export type UpsertOptions = { allNew?: boolean; signal?: AbortSignal };

/**
 * Where embeddings live. Two adapters implement it: Weaviate (WEAVIATE_URL
 * set; one tenant per project, one named vector per space) and an embedded
 * LanceDB store under DATA_DIR (the default, for a laptop). Every call takes
 * the caller's project and sees only that project's vectors.
 */
export interface VectorStore {
  readonly kind: "weaviate" | "embedded";
  /** Creates what the spaces need; safe to call again, and with new spaces later. */
  ensureSchema(spaces: SpaceDefinition[]): Promise<void>;
  /**
   * Inserts or replaces, in batches; unknown spaces are added on the way. `allNew`: the caller knows
   * no record is stored yet (its asset never had vectors), so a store may append without matching
   * existing rows (LanceDB's merge costs twice an append, and grows with the table). `signal`: the caller gave up
   * (the write may still land, or not); a store with shared write queues lets go of what only this caller waits for.
   */
  upsert(projectId: string, records: VectorRecord[], options?: UpsertOptions): Promise<void>;
  /** Removes every vector of the asset; returns how many there were. */
  deleteAsset(projectId: string, assetId: string): Promise<number>;
  /** Removes every vector of the project (a Weaviate tenant, LanceDB rows). */
  deleteProject(projectId: string): Promise<void>;
  nearVector(projectId: string, query: NearVectorQuery): Promise<VectorHit[]>;
  hybrid(projectId: string, query: HybridQuery): Promise<VectorHit[]>;
  /** The asset's stored vectors, so a query by asset need not encode it again. */
  vectorsOf(projectId: string, assetId: string): Promise<StoredVector[]>;
  count(projectId: string, where?: { assetId?: string; space?: string }): Promise<number>;
  /** Throws when the store cannot answer. */
  health(): Promise<void>;
  close(): Promise<void>;
}
