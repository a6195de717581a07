/** Where the cluster tests find (or start) their clusters; the scripts' defaults. */
export const REDIS_CLUSTER_PORTS = (process.env.REDIS_CLUSTER_PORTS ?? "7101 7102 7103").split(/\s+/).filter(Boolean).map(Number);
export const REDIS_CLUSTER_NODES = REDIS_CLUSTER_PORTS.map((port) => `127.0.0.1:${port}`).join(",");

/** The Weaviate cluster's nodes (infra/weaviate/cluster.sh: HTTP 8180+N, gRPC 50160+N). */
export const WEAVIATE_NODES = [1, 2, 3].map((n) => ({
  n,
  url: `http://127.0.0.1:${Number(process.env.WEAVIATE_CLUSTER_HTTP_BASE ?? 8180) + n}`,
  grpcPort: Number(process.env.WEAVIATE_CLUSTER_GRPC_BASE ?? 50160) + n,
}));
