import { execFile } from "node:child_process";
import { promisify } from "node:util";

/**
 * Starts the local Redis Cluster and the three-node Weaviate cluster (both idempotent: running ones are kept) and
 * leaves them running for the next run; `bash infra/redis-cluster/redis-cluster.sh stop` and
 * `bash infra/weaviate/cluster.sh stop` stop them.
 */
export default async function setup() {
  const run = promisify(execFile);
  await Promise.all([
    run("bash", ["infra/redis-cluster/redis-cluster.sh", "start"], { timeout: 120_000 }),
    // Builds weaviate-server first when it is missing (minutes, once).
    run("bash", ["infra/weaviate/cluster.sh", "start"], { timeout: 20 * 60_000, maxBuffer: 16 * 1024 * 1024 }),
  ]);
}
