/**
 * Where embeddings live. Two adapters implement it: Weaviate (WEAVIATE_URL set)
 * and an embedded store on local disk (the default, for a laptop).
 */
export interface VectorStore {
  readonly kind: string;
  /** Throws when the store cannot answer. */
  health(): Promise<void>;
  close(): Promise<void>;
}
