import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { renderGraphiQL } from "@graphql-yoga/render-graphiql";
import type { GraphQLError } from "graphql";
import { createYoga, type Plugin } from "graphql-yoga";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import { schema } from "../../schema/index.ts";
import type { AppContext } from "../app/app-context.ts";
import { ApiKeyCache, bearerToken, type Caller } from "../core/api-keys.ts";
import type { GatewayContext, ServerContext } from "./context.ts";
import { useObservability } from "./plugins/use-observability.ts";
import { withRequestContext } from "../observability/request-context.ts";
import { isClientError, maskError } from "./graphql-errors.ts";
import { useContentRoute } from "./content-route.ts";
import { OpenSubscriptions } from "./open-subscriptions.ts";
import { useIntrospectionSwitch } from "./plugins/use-introspection-switch.ts";
import { useKeyBeforeBody } from "./plugins/use-key-before-body.ts";
import { useProjectAuth } from "./plugins/use-project-auth.ts";
import { useSubscriptionLimits } from "./plugins/use-subscription-limits.ts";
import { useRateLimits } from "./plugins/use-rate-limits.ts";
import { useRequestBodyLimit } from "./plugins/use-request-body-limit.ts";
import { useWorkflowSchema } from "./plugins/use-workflow-schema.ts";
import { useStreamedUploads } from "./plugins/use-streamed-uploads.ts";
import { useStudio } from "./studio-route.ts";
import { useValidationErrorCodes } from "./plugins/use-validation-error-codes.ts";
import { persistedOperations } from "./plugins/use-persisted-operations.ts";
import { useWebhookTriggerRoute } from "./webhook-trigger-route.ts";
import { useMcpEndpoint } from "./mcp/use-mcp-endpoint.ts";

const GRAPHQL_ENDPOINT = "/graphql";

/** Extra routes and hooks that other domains (workflows, uploads) plug in. */
export type GatewayOptions = { plugins?: Plugin<GatewayContext>[] };

export function createGateway(app: AppContext, options: GatewayOptions = {}) {
  const { config } = app;
  const apiKeys = new ApiKeyCache(app.db, config.API_KEY_CACHE_MS);
  // The caller of each HTTP request, looked up once: before its body is read, then for its context.
  const callers = new WeakMap<Request, Promise<Caller | null>>();
  const callerOf = (header: unknown): Promise<Caller | null> => {
    const key = bearerToken(typeof header === "string" ? header : null);
    return key ? apiKeys.callerFor(key) : Promise.resolve(null);
  };
  const callerOfRequest = (request: Request) => {
    let caller = callers.get(request);
    if (!caller) callers.set(request, (caller = callerOf(request.headers.get("authorization"))));
    return caller;
  };
  // A request's project when its key is already in the cache: counted with its address, before the body.
  const knownProjectOf = (request: Request) => {
    const key = bearerToken(request.headers.get("authorization"));
    return key ? apiKeys.cachedCaller(key)?.project.id : undefined;
  };
  const callerOfConnection = (params: Record<string, unknown> | undefined) => callerOf(params?.authorization ?? params?.Authorization);
  const subscriptions = new OpenSubscriptions(
    { redis: app.redis, db: app.db, logger: app.logger, prefix: config.QUEUE_PREFIX },
    {
      maxPerProject: config.MAX_SUBSCRIPTIONS_PER_KEY,
      // As often as the key cache forgets, so a revoked key ends its subscriptions no later than its requests.
      recheckMs: config.API_KEY_CACHE_MS || 1000,
      onRevoked: (keyHash) => apiKeys.forget(keyHash),
    },
  );
  // PERSISTED_OPERATIONS: off, allow (hashes of the SDK's manifest besides text) or only (the allow-list).
  const persisted = persistedOperations(config);
  const yoga = createYoga<Record<string, unknown>, ServerContext>({
    schema,
    graphqlEndpoint: GRAPHQL_ENDPOINT,
    landingPage: false,
    // GraphiQL cannot work without introspection.
    graphiql: config.GRAPHQL_INTROSPECTION,
    // GraphiQL's page with its code inlined: the default loads it from a CDN and never starts offline.
    renderGraphiQL,
    logging: {
      debug: (...args) => app.logger.debug(args.join(" ")),
      info: (...args) => app.logger.info(args.join(" ")),
      warn: (...args) => app.logger.warn(args.join(" ")),
      // yoga logs each error it maps; a client's mistake (a TesseraError) is no server error.
      error: (...args) => (args.some(isClientError) ? app.logger.debug : app.logger.error).call(app.logger, args.map(String).join(" ")),
    },
    // TesseraErrors reach the client with their code; anything else as "Unexpected error.", never as a stack trace.
    maskedErrors: { isDev: false, maskError },
    // Yoga refuses bodies over 25 MB by default; uploads may be as large as MAX_UPLOAD_BYTES (plus the multipart envelope).
    // useRequestBodyLimit (last below) enforces that limit instead of yoga, without a stream per request.
    maxRequestBodySize: false,
    context: async (initial) => {
      const fromWebSocket = (initial as { connectionParams?: Record<string, unknown> }).connectionParams;
      const caller = await (fromWebSocket ? callerOfConnection(fromWebSocket) : initial.request ? callerOfRequest(initial.request) : null);
      return { app, project: caller?.project ?? null, apiKeyHash: caller?.keyHash ?? null, apiKeyScopes: caller?.scopes ?? [], apiKeyId: caller?.keyId ?? null, forgetApiKey: (hash: string) => apiKeys.forget(hash) };
    },
    plugins: [
      useRateLimits(app, { graphqlEndpoint: GRAPHQL_ENDPOINT, knownProjectOf }),
      // /live, /ready, /metrics; GraphQL operation metrics and spans (services/observability).
      useObservability(app),
      // /mcp: Tessera as an MCP server (services/gateway/mcp), after the per-address rate limit.
      useMcpEndpoint({ app, callerOf: callerOfRequest }),
      EnvelopArmorPlugin({
        maxDepth: { n: config.GRAPHQL_MAX_DEPTH },
        maxAliases: { n: config.GRAPHQL_MAX_ALIASES },
        costLimit: { maxCost: config.GRAPHQL_MAX_COST },
        maxDirectives: { n: 50 },
        maxTokens: { n: 5000 },
        // Suggestions are hidden (unless introspection is on) by useValidationErrorCodes, which also works under tsx.
        blockFieldSuggestion: { enabled: false },
      }) as Plugin,
      useValidationErrorCodes({ showSuggestions: config.GRAPHQL_INTROSPECTION }),
      useStreamedUploads({
        maxFileBytes: config.MAX_UPLOAD_BYTES,
        maxRequestBytes: config.MAX_UPLOAD_BYTES + 1024 * 1024,
        maxFiles: 10,
        maxFieldBytes: 1024 * 1024,
      }),
      useKeyBeforeBody({ callerOf: callerOfRequest, maxBodyBytes: config.MAX_UNAUTHENTICATED_BODY_BYTES }),
      ...persisted.plugins,
      useIntrospectionSwitch(config.GRAPHQL_INTROSPECTION),
      useProjectAuth(),
      useSubscriptionLimits(subscriptions),
      useWorkflowSchema(),
      // POST /hooks/triggers/<id>: signed webhook triggers start runs (no API key; the trigger's secret).
      useWebhookTriggerRoute(app),
      useContentRoute(app),
      useStudio(),
      ...(options.plugins ?? []),
      // After every request parser, as yoga's own limit was.
      useRequestBodyLimit(config.MAX_UPLOAD_BYTES + 1024 * 1024),
    ],
  });

  // Each request: an x-request-id on its log lines and response, the caller's traceparent, an access line.
  const server: Server = createServer(withRequestContext(app.logger, yoga));
  // Upgrades are handed over by hand, so the HTTP server's own errors (a port in use) reach listen() alone.
  // ws reads messages of up to 100 MiB by default; a larger one closes the socket with 1009.
  const webSockets = new WebSocketServer({ noServer: true, maxPayload: config.GRAPHQL_WS_MAX_PAYLOAD_BYTES });
  server.on("upgrade", (request, socket, head) => {
    if (new URL(request.url ?? "/", "http://localhost").pathname !== GRAPHQL_ENDPOINT) {
      socket.destroy();
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (client) => webSockets.emit("connection", client, request));
  });
  // graphql-ws on the same path as HTTP: the request runs through Yoga's plugins and context.
  const disposeWebSockets = useServer(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: (args: any) => args.rootValue.subscribe(args),
      // No valid key in connectionParams: the socket closes with 4403 Forbidden before any operation.
      onConnect: async (ctx) => (await callerOfConnection(ctx.connectionParams)) !== null,
      onSubscribe: async (ctx, _id, params) => {
        let query: string;
        try {
          query = persisted.wsQuery(params);
        } catch (error) {
          return [maskError(error, "Unexpected error.") as GraphQLError];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        });
        const args = {
          schema,
          operationName: params.operationName,
          document: parse(query),
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    webSockets,
  );

  return {
    yoga,
    server,
    async listen(port = config.PORT, host = config.HOST): Promise<AddressInfo> {
      await new Promise<void>((resolve, reject) => {
        server.once("error", (error: NodeJS.ErrnoException) =>
          reject(error.code === "EADDRINUSE" ? new Error(`port ${port} on ${host} is already in use: set PORT to a free one`) : error),
        );
        server.listen(port, host, () => resolve());
      });
      const address = server.address() as AddressInfo;
      app.logger.info({ host: address.address, port: address.port }, "gateway listening on /graphql");
      return address;
    },
    /** Stops taking requests, lets in-flight ones finish briefly, then closes sockets. */
    async close() {
      await disposeWebSockets.dispose();
      subscriptions.dispose();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 5000);
      await closed;
      clearTimeout(force);
    },
  };
}

export type Gateway = ReturnType<typeof createGateway>;
