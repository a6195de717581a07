/**
 * graphql-codegen's configuration for the SDK: typed documents (client preset)
 * for the operations in packages/client/operations, checked against
 * schema/schema.graphql, and the persisted-operations manifest (sha256 of each
 * document -> its text) the gateway's allow-list reads.
 *
 * `npm run sdk:generate` writes packages/client/generated; `npm run sdk:check`
 * writes into a temporary folder (SDK_CODEGEN_OUT) and fails when it differs.
 */
import type { CodegenConfig } from "@graphql-codegen/cli";

const out = process.env.SDK_CODEGEN_OUT ?? "packages/client/generated/";

const config: CodegenConfig = {
  schema: "schema/schema.graphql",
  documents: ["packages/client/operations/*.graphql"],
  ignoreNoDocuments: false,
  generates: {
    [out]: {
      preset: "client",
      presetConfig: {
        // No gql() tag function: the SDK imports the named documents.
        gqlTagName: "gql",
        fragmentMasking: false,
        // Each document carries __meta__.hash; persisted-documents.json maps hash -> text.
        persistedDocuments: { mode: "embedHashInDocument", hashAlgorithm: "sha256" },
      },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        avoidOptionals: false,
        scalars: {
          DateTime: "string",
          JSON: "unknown",
          Upload: "Blob | null",
        },
      },
    },
  },
};

export default config;
