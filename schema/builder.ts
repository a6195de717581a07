import SchemaBuilder from "@pothos/core";
import DataloaderPlugin from "@pothos/plugin-dataloader";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { DateTimeResolver, JSONResolver } from "graphql-scalars";
import { AuthScopeFailureType, type AuthFailure } from "@pothos/plugin-scope-auth";
import { API_KEY_SCOPES } from "../services/core/api-keys.ts";
import { missingApiKeyError, missingScopeError, type GatewayContext, type ProjectContext } from "../services/gateway/context.ts";

/** The first key scope (read, write, admin) a refusal names, if it was one of those. */
function failedScope(failure: AuthFailure): string | undefined {
  if (failure.kind === AuthScopeFailureType.AuthScope) return failure.scope === "project" ? undefined : failure.scope;
  if (failure.kind === AuthScopeFailureType.AllAuthScopes || failure.kind === AuthScopeFailureType.AnyAuthScopes) {
    for (const inner of failure.failures) {
      const scope = failedScope(inner);
      if (scope) return scope;
    }
  }
  return undefined;
}

/** The one Pothos builder; each file beside this adds the types of one domain. */
export const builder = new SchemaBuilder<{
  Context: GatewayContext;
  /** `project`: the caller sent a valid API key; `t.withAuth({ project: true })` narrows the context to it. */
  AuthScopes: { project: boolean; read: boolean; write: boolean; admin: boolean };
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
    authScopes: (context) => {
      // Contexts built by hand (tests executing the schema) carry no scopes: they act with all of them.
      const scopes: readonly string[] = context.project === null ? [] : (context.apiKeyScopes ?? API_KEY_SCOPES);
      return { project: context.project !== null, read: scopes.includes("read"), write: scopes.includes("write"), admin: scopes.includes("admin") };
    },
    unauthorizedError: (_parent, context, _info, result) => {
      if (!context.project) return missingApiKeyError();
      const scope = failedScope(result.failure);
      return scope ? missingScopeError(scope) : missingApiKeyError();
    },
    // A subscription is refused when it starts, not at its first event.
    authorizeOnSubscribe: true,
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    // Global `node` lookups would bypass per-domain project scoping; each domain has its own query.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    pageInfoTypeOptions: { description: "Where a page sits in its connection, and the cursors to go on from it." },
    hasNextPageFieldOptions: { description: "True when items come after this page (`first`/`after` go on from `endCursor`)." },
    hasPreviousPageFieldOptions: { description: "True when items come before this page (`last`/`before` go back from `startCursor`)." },
    startCursorFieldOptions: { description: "The cursor of the page's first item; null on an empty page." },
    endCursorFieldOptions: { description: "The cursor of the page's last item; null on an empty page." },
    pageInfoFieldOptions: { description: "Cursors and whether there is more." },
    edgesFieldOptions: { description: "The page's items, each with its cursor." },
    cursorFieldOptions: { description: "Pass it as `after` or `before` to page from this item." },
    nodeFieldOptions: { description: "The item." },
    firstArgOptions: { description: "Page forward: at most this many items (0 to 100; default 20)." },
    afterArgOptions: { description: "Page forward from this cursor (an `endCursor` or an edge's `cursor`)." },
    lastArgOptions: { description: "Page backward: at most this many items (0 to 100), the ones just before `before`." },
    beforeArgOptions: { description: "Page backward from this cursor (a `startCursor` or an edge's `cursor`)." },
    defaultConnectionTypeOptions: { description: "A page of a list (Relay cursor connection), with `totalCount`." },
    defaultEdgeTypeOptions: { description: "One item of a page, with its cursor." },
  },
});

// Deny by default: every root field needs the `project` scope unless it opts out (only `health` does).
builder.queryType({ authScopes: { $all: { project: true, read: true } }, description: "Reads. Every field but `health` needs `Authorization: Bearer <api key>` and sees only the key's project." });
builder.mutationType({ authScopes: { $all: { project: true, write: true } }, description: "Writes, each within the API key's project." });
builder.subscriptionType({
  authScopes: { $all: { project: true, read: true } },
  description: "Live events over Server-Sent Events or graphql-ws, within the API key's project.",
});

builder.globalConnectionField("totalCount", (t) =>
  t.int({
    description: "How many items match the connection's filters in all, across every page.",
    resolve: (connection) => connection.totalCount(),
  }),
);

builder.addScalarType("JSON", JSONResolver, { description: "Any JSON value (RFC 8259)." });
builder.addScalarType("DateTime", DateTimeResolver, { description: "A point in time as an RFC 3339 string in UTC, e.g. 2026-12-05T02:00:00.000Z." });
builder.scalarType("Upload", {
  description: "A file sent with the GraphQL multipart request spec.",
  serialize: () => {
    throw new Error("Upload is an input-only scalar");
  },
  parseValue: (value) => value as File,
});
