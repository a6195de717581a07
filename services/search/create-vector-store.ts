import path from "node:path";
import type { Config } from "../core/config.ts";
import { LanceDbVectorStore } from "./lancedb-vector-store.ts";
import type { VectorStore } from "./vector-store.ts";
import { WeaviateVectorStore } from "./weaviate-vector-store.ts";

/** Weaviate when WEAVIATE_URL is set; otherwise the embedded LanceDB store under DATA_DIR/vectors. */
export async function createVectorStore(config: Config): Promise<VectorStore> {
  if (config.WEAVIATE_URL) {
    return WeaviateVectorStore.connect({
      url: config.WEAVIATE_URL,
      grpcPort: config.WEAVIATE_GRPC_PORT,
      apiKey: config.WEAVIATE_API_KEY,
      collection: config.WEAVIATE_COLLECTION,
      vectorIndex: config.WEAVIATE_VECTOR_INDEX,
      replicationFactor: config.WEAVIATE_REPLICATION_FACTOR,
      consistencyLevel: config.WEAVIATE_CONSISTENCY_LEVEL,
    });
  }
  return LanceDbVectorStore.open(path.join(config.dataDir, "vectors"), {
    indexMinRows: config.VECTOR_INDEX_MIN_ROWS,
    nprobes: config.VECTOR_INDEX_NPROBES,
    refineFactor: config.VECTOR_INDEX_REFINE_FACTOR,
  });
}
