import fs from "node:fs/promises";
import path from "node:path";
import type { Config } from "../core/config.ts";
import type { VectorStore } from "./vector-store.ts";

/** Chooses the adapter from configuration. */
export async function createVectorStore(config: Config): Promise<VectorStore> {
  if (config.WEAVIATE_URL) {
    const readyUrl = new URL("/v1/.well-known/ready", config.WEAVIATE_URL);
    return {
      kind: "weaviate",
      async health() {
        const response = await fetch(readyUrl, { signal: AbortSignal.timeout(2000) });
        if (!response.ok) throw new Error(`Weaviate at ${config.WEAVIATE_URL} answered ${response.status}`);
      },
      async close() {},
    };
  }
  const dir = path.join(config.dataDir, "vectors");
  await fs.mkdir(dir, { recursive: true });
  return {
    kind: "embedded",
    async health() {
      await fs.access(dir, fs.constants.W_OK);
    },
    async close() {},
  };
}
