import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

/**
 * `npm run test:cluster`: Tessera on a Redis Cluster of three masters and a Weaviate cluster of three nodes, each
 * started on this machine by its script (infra/redis-cluster, infra/weaviate/cluster.sh) when not already running.
 * Kept out of `npm test`: the Weaviate cluster alone takes a minute or more to form on a loaded machine.
 */
export default defineConfig({
  resolve: { alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }] },
  test: {
    include: ["test/cluster/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts", "test/cluster/cluster-setup.ts"],
    testTimeout: 180_000,
    hookTimeout: 300_000,
    pool: "forks",
    // One file at a time: the clusters are the machine's, and the two cores are shared.
    fileParallelism: false,
  },
});
