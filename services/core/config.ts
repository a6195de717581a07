import path from "node:path";
import { z } from "zod";
import { isSecretKey, redactSecrets } from "./secret-redaction.ts";

/** Every setting Tessera reads from its environment, checked once at start-up. */
const ConfigSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.coerce.number().int().min(1).max(65535).default(4000),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: "must be a postgresql:// URL" })
    .default("postgresql://postgres@127.0.0.1:5432/tessera"),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// URL" }).default("redis://127.0.0.1:6379"),
  /**
   * Comma-separated `host:port` seeds of a Redis Cluster; set, Tessera talks to the cluster (REDIS_URL then gives only
   * the user, password and TLS) and QUEUE_PREFIX must be a hash tag such as `{tessera}`, so that every key lands in one slot.
   */
  REDIS_CLUSTER_NODES: z
    .string()
    .default("")
    .transform((value) => value.split(",").map((node) => node.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, "must be host:port entries, comma-separated"))),
  /** Unset: the embedded vector store under DATA_DIR. */
  WEAVIATE_URL: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).optional(),
  WEAVIATE_GRPC_PORT: z.coerce.number().int().min(1).max(65535).default(50051),
  WEAVIATE_API_KEY: z.string().optional(),
  /**
   * The index each space's vectors get when Weaviate's collection or a new space is created: `flat` searches
   * exactly (recall 1, cost linear in a project's vectors), `hnsw` approximately (sub-linear, recall below 1).
   */
  /** The collection that holds every project (as tenants): deployments sharing one Weaviate each set their own. */
  WEAVIATE_COLLECTION: z.string().regex(/^[A-Z][A-Za-z0-9_]*$/, "must be a Weaviate class name (a capital letter first)").default("TesseraVector"),
  WEAVIATE_VECTOR_INDEX: z.enum(["flat", "hnsw"]).default("flat"),
  /**
   * Copies of each project's vectors in a Weaviate cluster, set when the collection is created (at most the cluster's
   * nodes); above 1, async replication brings a node that was down up to date.
   */
  WEAVIATE_REPLICATION_FACTOR: z.coerce.number().int().min(1).default(1),
  /** Replicas that must answer each Weaviate read and acknowledge each write: ONE keeps working with a node down. */
  WEAVIATE_CONSISTENCY_LEVEL: z.enum(["ONE", "QUORUM", "ALL"]).default("ONE"),
  /**
   * How long, in all, an ingest's index stage keeps retrying while the vector store cannot be reached (refused,
   * reset, timed out, 5xx, gRPC UNAVAILABLE) before the attempt fails with a retryable SERVICE_UNAVAILABLE; 0: no retries.
   */
  VECTOR_STORE_RETRY_MS: z.coerce.number().int().min(0).default(5 * 60_000),
  /** The longest single wait between two of those tries (exponential backoff with jitter up to it). */
  VECTOR_STORE_RETRY_MAX_WAIT_MS: z.coerce.number().int().positive().default(15_000),
  /**
   * The embedded store builds an approximate vector index (LanceDB IVF_PQ, cosine) for a space once its table holds
   * this many vectors, in the background, and folds new rows into it as they arrive; below it, while it builds, and
   * for a project with fewer vectors than it, searches scan exactly. 0: never index (always exact).
   */
  VECTOR_INDEX_MIN_ROWS: z.coerce.number().int().min(0).default(50_000),
  /**
   * IVF partitions each indexed search probes (of about √rows, 316 at 100k): more is slower and finds more. 40 with a
   * refine factor of 50 gave recall@10 0.965 at 100k sentence vectors (bench/README.md, "ann"); 20 stays near 0.92.
   */
  VECTOR_INDEX_NPROBES: z.coerce.number().int().positive().default(40),
  /** Indexed searches take limit × this many candidates from the compressed index, then rank them by exact distance. */
  VECTOR_INDEX_REFINE_FACTOR: z.coerce.number().int().positive().default(50),
  DATA_DIR: z.string().min(1).default(".data"),
  MODELS_DIR: z.string().min(1).default("models"),
  /** Prefix of every BullMQ key, so several deployments can share one Redis. */
  QUEUE_PREFIX: z.string().regex(/^(\{[\w-]+\}|[\w-]+)$/, "must be letters, digits, _ or -, or those in braces ({tessera})").default("tessera"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** `pretty`: readable lines (pino-pretty, formatted on a worker thread); `json`: one JSON object a line; `auto`: pretty on a terminal, JSON otherwise. */
  LOG_FORMAT: z.enum(["auto", "json", "pretty"]).default("auto"),
  MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(100 * 1024 * 1024),
  /** GraphQL limits against hostile queries. */
  GRAPHQL_MAX_DEPTH: z.coerce.number().int().positive().default(12),
  GRAPHQL_MAX_ALIASES: z.coerce.number().int().positive().default(30),
  GRAPHQL_MAX_COST: z.coerce.number().int().positive().default(5000),
  /** How long the gateway trusts a key it has checked; a revoked key works at most this long. 0 turns it off. */
  API_KEY_CACHE_MS: z.coerce.number().int().min(0).default(30_000),
  /** Largest request body read before the caller's key is known (a keyless `health` needs a few hundred bytes). */
  MAX_UNAUTHENTICATED_BODY_BYTES: z.coerce.number().int().positive().default(64 * 1024),
  /** Largest graphql-ws message; `ws` allows 100 MiB by default. */
  GRAPHQL_WS_MAX_PAYLOAD_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Open subscriptions (SSE and graphql-ws together) one project may hold across all gateways. */
  MAX_SUBSCRIPTIONS_PER_KEY: z.coerce.number().int().positive().default(100),
  /**
   * Persisted operations (the SDK's manifest, PERSISTED_OPERATIONS_FILE): off; allow (a request may name a listed
   * operation by its sha256 instead of sending its text, and any text still runs); only (production allow-list:
   * nothing but listed operations, by hash, over HTTP, SSE and graphql-ws).
   */
  PERSISTED_OPERATIONS: z.enum(["off", "allow", "only"], { error: "must be off, allow or only" }).default("off"),
  /** The manifest: a JSON object of "sha256:<hex>" (or "<hex>") -> operation text, as packages/client's codegen writes it. */
  PERSISTED_OPERATIONS_FILE: z.string().min(1).default("packages/client/generated/persisted-documents.json"),
  /** Schema introspection (and GraphiQL) only when set to 1: off by default, in production too; schema/schema.graphql is the offline SDL. */
  GRAPHQL_INTROSPECTION: z
    .enum(["0", "1", "true", "false"], { error: "must be 1 or 0" })
    .default("0")
    .transform((value) => value === "1" || value === "true"),
  /**
   * Key of the HMAC that signs `Asset.contentUrl`s (at least 32 characters). Unset: a random one per process, so a
   * URL works only on the gateway that signed it; set the same value on every gateway behind one address.
   */
  CONTENT_URL_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  /** How long a signed content URL stays valid, in seconds. */
  CONTENT_URL_TTL_SECONDS: z.coerce.number().int().min(1).max(7 * 24 * 3600).default(900),
  WORKER_CONCURRENCY: z.coerce.number().int().positive().default(4),
  /**
   * A worker holds each running job under a lock in Redis for this long, renewed at half of it; a worker that dies
   * (kill -9, out of memory) lets it lapse, and the next stall check, every WORKER_STALLED_CHECK_MS, hands the job to
   * another worker: a dead worker's job moves on within WORKER_LOCK_MS + WORKER_STALLED_CHECK_MS. The event loop must
   * never be blocked this long, or a live job is taken for dead. BullMQ's own defaults are 30 s and 30 s.
   */
  WORKER_LOCK_MS: z.coerce.number().int().min(1000).default(10_000),
  WORKER_STALLED_CHECK_MS: z.coerce.number().int().min(100).default(5_000),
  /** How many times a job may lose its worker and still run again; one more and it fails with WORKER_LOST. */
  WORKER_MAX_STALLS: z.coerce.number().int().min(0).default(2),
  /** Longest a request waits for Redis to take a job; past it (or at once, while Redis is disconnected) the request gets SERVICE_UNAVAILABLE. */
  QUEUE_ADD_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
  /**
   * The reconciler (services/worker/reconciler.ts), a BullMQ job scheduler served by the workers: how often a pass
   * runs (0: never), how long a Job, Run or StepRun row must be left untouched before a missing job counts as lost,
   * how often a lost row is enqueued again before it fails with WORKER_LOST, and how old an unreferenced blob must be
   * before it is deleted (an upload stores its bytes before its asset row).
   */
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(0).default(30_000),
  RECONCILE_GRACE_MS: z.coerce.number().int().min(0).default(60_000),
  RECONCILE_MAX_REQUEUES: z.coerce.number().int().min(0).default(3),
  ORPHAN_BLOB_GRACE_MS: z.coerce.number().int().min(0).default(3_600_000),
  /** Comma-separated globs of models this process calls on other workers (`--remote-models` for a worker). */
  REMOTE_MODELS: z
    .string()
    .default("")
    .transform((value) => value.split(",").map((glob) => glob.trim()).filter(Boolean)),
  /**
   * Comma-separated globs of models a worker (and `npm start`) loads right after it starts, `served` for every model
   * it runs; /ready answers 503 until each is loaded (`--preload` for a worker overrides it). Empty: models load on
   * their first job. A glob that names no model the process runs stops its start.
   */
  MODEL_PRELOAD: z
    .string()
    .default("")
    .transform((value) => value.split(",").map((glob) => glob.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[a-z0-9._*?-]+$/, "must be model name globs like clip-*,silero-vad, or served"))),
  /** How long a call of a remote model waits for a worker that serves it. */
  MODEL_CALL_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
  /** Ingestion from URLs: whole-fetch time limit, redirects followed, and hosts exempt from the private-network guard. */
  URL_FETCH_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  URL_MAX_REDIRECTS: z.coerce.number().int().min(0).default(5),
  /** Comma-separated `host` or `host:port` entries that may resolve to private addresses (e.g. an internal file server). */
  URL_ALLOW_HOSTS: z
    .string()
    .default("")
    .transform((value) => value.split(",").map((host) => host.trim().toLowerCase()).filter(Boolean)),
  /** Larger images are refused before decoding (decompression bombs). */
  MAX_IMAGE_PIXELS: z.coerce.number().int().positive().default(100_000_000),
  /** Decoded images and video frames are scaled down to this longest side. */
  IMAGE_MAX_SIDE: z.coerce.number().int().positive().default(1024),
  /** Video frames sampled per second of video, and at most this many per video. */
  VIDEO_FRAME_RATE: z.coerce.number().positive().default(1),
  VIDEO_MAX_FRAMES: z.coerce.number().int().positive().default(32),
  /** Audio (and a video's sound track) is decoded up to this length; 16 kHz float PCM is 230 MB an hour. */
  AUDIO_MAX_SECONDS: z.coerce.number().positive().default(3600),
  /** Time limit of one ffprobe/ffmpeg run. */
  MEDIA_TOOL_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
  /** Text assets are split into chunks of about this many characters, overlapping by TEXT_CHUNK_OVERLAP. */
  TEXT_CHUNK_CHARS: z.coerce.number().int().positive().default(1000),
  TEXT_CHUNK_OVERLAP: z.coerce.number().int().min(0).default(100),
  /**
   * Per-project limits (services/limits). Requests per second on every HTTP route, counted per client address before
   * the key is known and per project after; BURST is the extra requests allowed above that rate in each 10 s. 0 turns a rate off.
   */
  RATE_LIMIT_PROJECT_PER_SECOND: z.coerce.number().int().min(0).default(200),
  RATE_LIMIT_PROJECT_BURST: z.coerce.number().int().min(0).default(2000),
  RATE_LIMIT_ADDRESS_PER_SECOND: z.coerce.number().int().min(0).default(500),
  RATE_LIMIT_ADDRESS_BURST: z.coerce.number().int().min(0).default(5000),
  /** Top-level workflow runs of a project that may be queued or running at once. */
  QUOTA_CONCURRENT_RUNS: z.coerce.number().int().positive().default(100),
  /** Ingest and generate jobs of a project that may be queued or running at once. */
  QUOTA_CONCURRENT_JOBS: z.coerce.number().int().positive().default(1000),
  /** Bytes of distinct content a project may store (10 GiB). */
  QUOTA_STORAGE_BYTES: z.coerce.number().int().positive().default(10 * 1024 ** 3),
  /** Generation tokens (prompt plus completion) a project may spend per period, and the period's length. */
  QUOTA_GENERATION_TOKENS: z.coerce.number().int().positive().default(10_000_000),
  QUOTA_GENERATION_PERIOD_SECONDS: z.coerce.number().int().positive().default(86_400),
  /** A text asset is indexed up to this many chunks; the rest is left out and Asset.media.decoded.text says so. */
  TEXT_MAX_CHUNKS: z.coerce.number().int().positive().default(2000),
  /** Most vectors one asset may write (all spaces and chunks together); an asset that would write more fails. */
  ASSET_MAX_VECTORS: z.coerce.number().int().positive().default(10_000),
  /** Longest `search(text:)` (characters), refused before any work: tokenisers and BM25 cost grows with it. */
  SEARCH_MAX_TEXT_CHARS: z.coerce.number().int().positive().default(4000),
  /** Largest ingest metadata (bytes of its JSON) and most tags (each 1 to 100 characters), refused before any work. */
  INGEST_MAX_METADATA_BYTES: z.coerce.number().int().positive().default(16_384),
  INGEST_MAX_TAGS: z.coerce.number().int().positive().default(50),
  /** MCP (services/gateway/mcp, services/mcp-client): Host/Origin entries the /mcp endpoint answers besides the localhost forms (`host` or `host:port`, comma-separated). */
  MCP_ALLOWED_HOSTS: z
    .string()
    .default("")
    .transform((value) => value.split(",").map((host) => host.trim().toLowerCase()).filter(Boolean)),
  /** Longest wait for another MCP server (connect plus one call), and the largest answer taken from one. */
  MCP_CALL_TIMEOUT_MS: z.coerce.number().int().positive().default(60_000),
  MCP_MAX_RESULT_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  /** Encrypts the header values of registered MCP servers at rest (at least 32 characters). Unset: in production headers cannot be registered; elsewhere a fixed development key. */
  MCP_SECRETS_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  /** Observability (services/observability). A worker's own HTTP port for /live, /ready and /metrics; unset: none. */
  WORKER_HTTP_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** When set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  /** Tracing is on only when this is set: the OTLP/HTTP endpoint (spans go to its /v1/traces). */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, error: "must be an http(s):// URL" }).optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(["http/protobuf", "http/json"]).default("http/protobuf"),
  /** Prompts, texts and media in spans only when set to 1. */
  OTEL_CAPTURE_CONTENT: z
    .enum(["0", "1", "true", "false"], { error: "must be 1 or 0" })
    .default("0")
    .transform((value) => value === "1" || value === "true"),
});

/** Rules across variables (infra/env-example.ts reads ConfigSchema's own object literal, so they live here). */
const CheckedConfigSchema = ConfigSchema.refine((config) => config.REDIS_CLUSTER_NODES.length === 0 || /^\{[\w-]+\}$/.test(config.QUEUE_PREFIX), {
  path: ["QUEUE_PREFIX"],
  error: "must be a hash tag such as {tessera} when REDIS_CLUSTER_NODES is set (BullMQ's keys of one queue must share a slot)",
});

export type Config = z.infer<typeof ConfigSchema> & { dataDir: string; modelsDir: string };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Parses the environment; throws one ConfigError that names every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "not set", as in docker-compose files with `VAR=`.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ""));
  const parsed = CheckedConfigSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join(".");
        const value = env[name];
        // The value helps, but never a secret: secret-named variables are not echoed, URLs lose their passwords.
        const shown = value === undefined || isSecretKey(name) ? "" : ` (got ${JSON.stringify(redactSecrets(value))})`;
        return `${name}: ${issue.message}${shown}`;
      }),
    );
  }
  return {
    ...parsed.data,
    dataDir: path.resolve(parsed.data.DATA_DIR),
    modelsDir: path.resolve(parsed.data.MODELS_DIR),
  };
}
