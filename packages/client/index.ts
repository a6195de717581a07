/** @tessera/client: the typed SDK (see README.md). */
export * from "./src/client.ts";
export * from "./generated/graphql.ts";
