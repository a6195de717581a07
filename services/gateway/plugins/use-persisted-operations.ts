import fs from "node:fs";
import { usePersistedOperations } from "@graphql-yoga/plugin-persisted-operations";
import type { Plugin } from "graphql-yoga";
import type { Config } from "../../core/config.ts";
import { TesseraError } from "../../core/errors.ts";

/**
 * Persisted operations (issue 19) with yoga's plugin, from the manifest the
 * SDK's codegen writes (packages/client/generated/persisted-documents.json):
 * a request names an operation by `extensions.persistedQuery.sha256Hash`.
 * PERSISTED_OPERATIONS=allow also runs any query text; `only` runs nothing
 * else (PERSISTED_OPERATION_REQUIRED), the allow-list for production. An
 * unknown hash is PERSISTED_OPERATION_NOT_FOUND. Off: no plugin at all.
 */
export function loadPersistedOperations(file: string): Map<string, string> {
  let manifest: unknown;
  try {
    manifest = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`PERSISTED_OPERATIONS_FILE ${file} cannot be read as JSON: ${(error as Error).message}`);
  }
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) throw new Error(`PERSISTED_OPERATIONS_FILE ${file} is no JSON object of hash -> operation`);
  const operations = new Map<string, string>();
  for (const [hash, text] of Object.entries(manifest)) if (typeof text === "string") operations.set(hash.replace(/^sha256:/, ""), text);
  return operations;
}

type Mode = Pick<Config, "PERSISTED_OPERATIONS" | "PERSISTED_OPERATIONS_FILE">;

/**
 * The yoga plugin for HTTP and SSE, and `wsQuery` for graphql-ws (whose
 * messages do not pass yoga's onParams): the text a subscribe message runs,
 * or a TesseraError, by the same rules.
 */
export function persistedOperations(config: Mode): { plugins: Plugin[]; wsQuery: (params: { query?: string; extensions?: unknown }) => string } {
  if (config.PERSISTED_OPERATIONS === "off") return { plugins: [], wsQuery: (params) => params.query ?? "" };
  const operations = loadPersistedOperations(config.PERSISTED_OPERATIONS_FILE);
  const wsQuery = (params: { query?: string; extensions?: unknown }) => {
    const hash = (params.extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery?.sha256Hash;
    if (params.query && config.PERSISTED_OPERATIONS === "allow") return params.query;
    if (typeof hash !== "string" || params.query) {
      throw new TesseraError("PERSISTED_OPERATION_REQUIRED", "this gateway runs only persisted operations: send extensions.persistedQuery.sha256Hash of a listed operation, not its text");
    }
    const text = operations.get(hash.replace(/^sha256:/, ""));
    if (!text) throw new TesseraError("PERSISTED_OPERATION_NOT_FOUND", "the gateway's persisted-operations manifest has no operation with this hash", { hash });
    return text;
  };
  return { plugins: usePersistedOperationsPlugin(operations, config), wsQuery };
}

function usePersistedOperationsPlugin(operations: Map<string, string>, config: Mode): Plugin[] {
  return [
    usePersistedOperations({
      getPersistedOperation: (hash) => operations.get(hash.replace(/^sha256:/, "")) ?? null,
      allowArbitraryOperations: config.PERSISTED_OPERATIONS === "allow",
      customErrors: {
        persistedQueryOnly: () =>
          new TesseraError("PERSISTED_OPERATION_REQUIRED", "this gateway runs only persisted operations: send extensions.persistedQuery.sha256Hash of a listed operation, not its text"),
        keyNotFound: () =>
          new TesseraError("PERSISTED_OPERATION_REQUIRED", "no operation: send extensions.persistedQuery { version: 1, sha256Hash } of a listed operation"),
        notFound: (payload) => {
          const hash = (payload.params.extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery?.sha256Hash;
          return new TesseraError("PERSISTED_OPERATION_NOT_FOUND", "the gateway's persisted-operations manifest has no operation with this hash", { hash });
        },
      },
    }) as Plugin,
  ];
}
