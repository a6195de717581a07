// `npm run lint:helm`'s manifest test: no global setup (it needs no PostgreSQL, Redis or Weaviate), only helm.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["infra/helm/**/*.test.ts"],
    // A cold machine builds helm first (infra/helm/helm.sh: minutes, from the Go module proxy).
    testTimeout: 60_000,
    hookTimeout: 60 * 60_000,
  },
});
