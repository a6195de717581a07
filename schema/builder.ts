import SchemaBuilder from "@pothos/core";
import RelayPlugin from "@pothos/plugin-relay";
import { DateTimeResolver, JSONResolver } from "graphql-scalars";
import type { GatewayContext } from "../services/gateway/context.ts";

/** The one Pothos builder; each file beside this adds the types of one domain. */
export const builder = new SchemaBuilder<{
  Context: GatewayContext;
  DefaultFieldNullability: false;
  Scalars: {
    JSON: { Input: unknown; Output: unknown };
    DateTime: { Input: Date; Output: Date };
    Upload: { Input: File; Output: never };
  };
}>({
  plugins: [RelayPlugin],
  defaultFieldNullability: false,
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    // Global `node` lookups would bypass per-domain project scoping; each domain has its own query.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

builder.addScalarType("JSON", JSONResolver);
builder.addScalarType("DateTime", DateTimeResolver);
builder.scalarType("Upload", {
  description: "A file sent with the GraphQL multipart request spec.",
  serialize: () => {
    throw new Error("Upload is an input-only scalar");
  },
  parseValue: (value) => value as File,
});
