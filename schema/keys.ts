import { API_KEY_SCOPES, issueApiKey, type ApiKeyScope } from "../services/core/api-keys.ts";
import type { ApiKey } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import type { ProjectContext } from "../services/gateway/context.ts";
import { builder } from "./builder.ts";
import { direction, rowConnection } from "./connections.ts";

const ApiKeyScopeEnum = builder.enumType("ApiKeyScope", {
  description: "What an API key may do.",
  values: {
    READ: { value: "read", description: "Queries and subscriptions." },
    WRITE: { value: "write", description: "Mutations." },
    ADMIN: { value: "admin", description: "Listing, creating and revoking the project's keys (`keys`, `createKey`, `revokeKey`)." },
  } as const,
});

const ApiKeyRef = builder.objectRef<ApiKey>("ApiKey").implement({
  description: "An API key of the project. Only its hash is stored; the key itself is shown once, by `createKey`.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The key's id (what `revokeKey` takes)." }),
    name: t.exposeString("name", { nullable: true, description: "A name to tell keys apart." }),
    prefix: t.exposeString("prefix", { description: "The key's first characters, to recognise it." }),
    scopes: t.field({
      type: [ApiKeyScopeEnum],
      description: "What it may do.",
      resolve: (key) => key.scopes.filter((scope): scope is ApiKeyScope => (API_KEY_SCOPES as readonly string[]).includes(scope)),
    }),
    createdAt: t.field({ type: "DateTime", description: "When it was created.", resolve: (key) => key.createdAt }),
    expiresAt: t.field({ type: "DateTime", nullable: true, description: "When it stops working; null: never.", resolve: (key) => key.expiresAt }),
    lastUsedAt: t.field({
      type: "DateTime",
      nullable: true,
      description: "When it was last used, to within a minute (written at most once a minute); null: never.",
      resolve: (key) => key.lastUsedAt,
    }),
    revokedAt: t.field({ type: "DateTime", nullable: true, description: "When it was revoked; null while it works.", resolve: (key) => key.revokedAt }),
    current: t.boolean({ description: "True for the key this request was made with.", resolve: (key, _args, context) => key.id === context.apiKeyId }),
  }),
});

builder.queryField("keys", (t) =>
  t.withAuth({ $all: { project: true, admin: true } }).connection({
    type: ApiKeyRef,
    description: "The project's API keys, newest first. Needs the `admin` scope.",
    args: { includeRevoked: t.arg.boolean({ required: false, defaultValue: false, description: "Also list revoked keys." }) },
    resolve: (_root, args, context) => {
      const where = { projectId: context.project.id, ...(args.includeRevoked ? {} : { revokedAt: null }) };
      return rowConnection(
        args,
        ({ cursor, skip, take, inverted }) =>
          context.app.db.apiKey.findMany({
            where,
            cursor,
            skip,
            take,
            orderBy: [{ createdAt: direction(false, inverted) }, { id: direction(false, inverted) }],
          }),
        () => context.app.db.apiKey.count({ where }),
      );
    },
  }),
);

const CreateKeyPayload = builder.objectRef<{ key: string; apiKey: ApiKey }>("CreateKeyPayload").implement({
  description: "A new key: `key` is shown this once and never again.",
  fields: (t) => ({
    key: t.exposeString("key", { description: "The key itself, for `Authorization: Bearer <key>`; store it now." }),
    apiKey: t.field({ type: ApiKeyRef, description: "Its record.", resolve: (payload) => payload.apiKey }),
  }),
});

const MAX_KEY_NAME = 100;

builder.mutationField("createKey", (t) =>
  t.withAuth({ $all: { project: true, admin: true } }).field({
    type: CreateKeyPayload,
    description:
      "Creates an API key of this project. Its scopes must be among the calling key's (no key makes a stronger one); default READ and WRITE. Needs the `admin` scope.",
    args: {
      name: t.arg.string({ required: false, description: `A name to tell it apart, at most ${MAX_KEY_NAME} characters.` }),
      scopes: t.arg({ type: [ApiKeyScopeEnum], required: false, description: "What it may do; default READ and WRITE." }),
      expiresAt: t.arg({ type: "DateTime", required: false, description: "When it stops working (in the future); default never." }),
    },
    resolve: async (_root, args, context) => {
      const scopes = [...new Set(args.scopes ?? (["read", "write"] as const))] as ApiKeyScope[];
      if (scopes.length === 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "a key needs at least one scope", { argument: "scopes" });
      const own = callerScopes(context);
      const beyond = scopes.filter((scope) => !own.includes(scope));
      if (beyond.length) {
        throw new TesseraError(ErrorCode.FORBIDDEN, `this key cannot grant scopes it lacks: ${beyond.map((scope) => scope.toUpperCase()).join(", ")}`, { scopes: beyond });
      }
      if (args.name != null && (args.name.length === 0 || args.name.length > MAX_KEY_NAME)) {
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, `name must be 1 to ${MAX_KEY_NAME} characters`, { argument: "name" });
      }
      if (args.expiresAt && args.expiresAt.getTime() <= Date.now()) {
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, `expiresAt must be in the future (got ${args.expiresAt.toISOString()})`, { argument: "expiresAt" });
      }
      return issueApiKey(context.app.db, context.project.id, { name: args.name ?? undefined, scopes, expiresAt: args.expiresAt ?? null });
    },
  }),
);

builder.mutationField("revokeKey", (t) =>
  t.withAuth({ $all: { project: true, admin: true } }).field({
    type: ApiKeyRef,
    description:
      "Revokes a key of this project: it stops working at once on this gateway and within API_KEY_CACHE_MS on others, and its subscriptions end. " +
      "NOT_FOUND for another project's key, CONFLICT if already revoked. Needs the `admin` scope.",
    args: { id: t.arg.id({ required: true, description: "The key's id (`ApiKey.id`)." }) },
    resolve: async (_root, args, context) => {
      const id = String(args.id);
      const { count } = await context.app.db.apiKey.updateMany({ where: { id, projectId: context.project.id, revokedAt: null }, data: { revokedAt: new Date() } });
      const key = await context.app.db.apiKey.findFirst({ where: { id, projectId: context.project.id } });
      if (!key) throw new TesseraError(ErrorCode.NOT_FOUND, `no API key ${id} in this project`);
      if (count === 0) throw new TesseraError(ErrorCode.CONFLICT, `API key ${id} was already revoked at ${key.revokedAt!.toISOString()}`);
      context.forgetApiKey?.(key.hash);
      return key;
    },
  }),
);

function callerScopes(context: ProjectContext): readonly ApiKeyScope[] {
  return context.apiKeyScopes ?? API_KEY_SCOPES;
}
