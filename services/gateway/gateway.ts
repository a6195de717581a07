import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { createYoga, type Plugin } from "graphql-yoga";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import { schema } from "../../schema/index.ts";
import type { AppContext } from "../app/app-context.ts";
import { ApiKeyCache, bearerToken } from "../core/api-keys.ts";
import type { GatewayContext, ServerContext } from "./context.ts";
import { isClientError, maskError } from "./graphql-errors.ts";
import { useProjectAuth } from "./plugins/use-project-auth.ts";
import { useRateLimits } from "./plugins/use-rate-limits.ts";
import { useWorkflowSchema } from "./plugins/use-workflow-schema.ts";
import { useStreamedUploads } from "./plugins/use-streamed-uploads.ts";
import { useValidationErrorCodes } from "./plugins/use-validation-error-codes.ts";

/** Extra routes and hooks that other domains (workflows, uploads) plug in. */
export type GatewayOptions = { plugins?: Plugin<GatewayContext>[] };

export function createGateway(app: AppContext, options: GatewayOptions = {}) {
  const { config } = app;
  const apiKeys = new ApiKeyCache(app.db, config.API_KEY_CACHE_MS);
  const yoga = createYoga<Record<string, unknown>, ServerContext>({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
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
    maxRequestBodySize: config.MAX_UPLOAD_BYTES + 1024 * 1024,
    context: async (initial) => {
      const fromHttp = initial.request?.headers.get("authorization");
      const fromWebSocket = (initial as { connectionParams?: Record<string, unknown> }).connectionParams;
      const header = fromHttp ?? (fromWebSocket?.authorization as string | undefined) ?? (fromWebSocket?.Authorization as string | undefined);
      const key = bearerToken(header);
      const project = key ? await apiKeys.projectFor(key) : null;
      return { app, project };
    },
    plugins: [
      useRateLimits(app),
      EnvelopArmorPlugin({
        maxDepth: { n: config.GRAPHQL_MAX_DEPTH },
        maxAliases: { n: config.GRAPHQL_MAX_ALIASES },
        costLimit: { maxCost: config.GRAPHQL_MAX_COST },
        maxDirectives: { n: 50 },
        maxTokens: { n: 5000 },
        blockFieldSuggestion: { enabled: true },
      }) as Plugin,
      useValidationErrorCodes(),
      useStreamedUploads({
        maxFileBytes: config.MAX_UPLOAD_BYTES,
        maxRequestBytes: config.MAX_UPLOAD_BYTES + 1024 * 1024,
        maxFiles: 10,
        maxFieldBytes: 1024 * 1024,
      }),
      useProjectAuth(),
      useWorkflowSchema(),
      ...(options.plugins ?? []),
    ],
  });

  const server: Server = createServer(yoga);
  // Upgrades are handed over by hand, so the HTTP server's own errors (a port in use) reach listen() alone.
  const webSockets = new WebSocketServer({ noServer: true });
  server.on("upgrade", (request, socket, head) => {
    if (new URL(request.url ?? "/", "http://localhost").pathname !== "/graphql") {
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
      onSubscribe: async (ctx, _id, params) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        });
        const args = {
          schema,
          operationName: params.operationName,
          document: parse(params.query),
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
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 5000);
      await closed;
      clearTimeout(force);
    },
  };
}

export type Gateway = ReturnType<typeof createGateway>;
