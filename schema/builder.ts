import SchemaBuilder from "@pothos/core";
import DataloaderPlugin from "@pothos/plugin-dataloader";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { DateTimeResolver, JSONResolver } from "graphql-scalars";
import { missingApiKeyError, type GatewayContext, type ProjectContext } from "../services/gateway/context.ts";

/** The one Pothos builder; each file beside this adds the types of one domain. */
export const builder = new SchemaBuilder<{
  Context: GatewayContext;
  /** `project`: the caller sent a valid API key; `t.withAuth({ project: true })` narrows the context to it. */
  AuthScopes: { project: boolean };
  AuthContexts: { project: ProjectContext };
  DefaultFieldNullability: false;
  /** Every connection counts what its filters match, counted only when `totalCount` is asked for. */
  Connection: { totalCount: () => Promise<number> };
  Scalars: {
    JSON: { Input: unknown; Output: unknown };
    DateTime: { Input: Date; Output: Date };
    Upload: { Input: File; Output: never };
  };
}>({
  // Scope auth first, so no other plugin's wrapper runs before the check.
  plugins: [ScopeAuthPlugin, RelayPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authScopes: (context) => ({ project: context.project !== null }),
    unauthorizedError: () => missingApiKeyError(),
    // A subscription is refused when it starts, not at its first event.
    authorizeOnSubscribe: true,
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    // Global `node` lookups would bypass per-domain project scoping; each domain has its own query.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
});

// Deny by default: every root field needs the `project` scope unless it opts out (only `health` does).
builder.queryType({ authScopes: { project: true } });
builder.mutationType({ authScopes: { project: true } });
builder.subscriptionType({ authScopes: { project: true } });

builder.globalConnectionField("totalCount", (t) =>
  t.int({
    description: "How many items match the connection's filters in all, across every page.",
    resolve: (connection) => connection.totalCount(),
  }),
);

builder.addScalarType("JSON", JSONResolver);
builder.addScalarType("DateTime", DateTimeResolver);
builder.scalarType("Upload", {
  description: "A file sent with the GraphQL multipart request spec.",
  serialize: () => {
    throw new Error("Upload is an input-only scalar");
  },
  parseValue: (value) => value as File,
});
