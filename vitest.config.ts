import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // Node loads graphql's CommonJS build for our dependencies; make our own code
    // load the same copy, or `instanceof GraphQLError` fails across the two.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  test: {
    include: ["test/**/*.test.ts"],
    // The Redis and Weaviate cluster tests: `npm run test:cluster` (vitest.cluster.config.ts).
    exclude: ["**/node_modules/**", "test/cluster/**"],
    globalSetup: ["test/support/global-setup.ts"],
    // Integration tests talk to real services; each file uses its own project and queue prefix.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
