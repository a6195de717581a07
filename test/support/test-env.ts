/** Tests run against their own database on the same PostgreSQL server. */
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/tessera_test";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** The real Weaviate the suite starts (infra/weaviate/weaviate.sh start); its gRPC port beside it. */
export const TEST_WEAVIATE_URL = process.env.TEST_WEAVIATE_URL ?? "http://127.0.0.1:8080";
export const TEST_WEAVIATE_GRPC_PORT = Number(process.env.TEST_WEAVIATE_GRPC_PORT ?? 50051);
/**
 * Test files share one database under queue prefixes of their own: a reconciler scanning every project would take
 * other files' rows into its queues. It is off in test apps and the workers tests spawn (they inherit this), and
 * reconciler tests run passes scoped to their projects.
 */
process.env.RECONCILE_INTERVAL_MS ??= "0";
