import { listMcpServers, registerMcpServer, removeMcpServer, type McpServerView } from "../services/mcp-client/mcp-servers.ts";
import { builder } from "./builder.ts";

const McpServerRef = builder.objectRef<McpServerView>("McpServer").implement({
  description: "Another MCP server the project's `mcp.call` steps and agents (`mcp: [name]`) may call. Header values are stored encrypted and never returned.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The registration's id." }),
    name: t.exposeString("name", { description: "The name steps refer to it by (`mcp.call` with `server`)." }),
    url: t.exposeString("url", { description: "The server's Streamable HTTP endpoint." }),
    headerNames: t.exposeStringList("headerNames", { description: "The names of the headers sent with each request; never their values." }),
    createdAt: t.field({ type: "DateTime", description: "When it was first registered.", resolve: (server) => server.createdAt }),
    updatedAt: t.field({ type: "DateTime", description: "When it was last registered again.", resolve: (server) => server.updatedAt }),
  }),
});

builder.queryField("mcpServers", (t) =>
  t.withAuth({ project: true }).field({
    type: [McpServerRef],
    description: "The project's registered MCP servers, by name.",
    resolve: (_root, _args, context) => listMcpServers(context.app.db, context.project.id),
  }),
);

builder.mutationField("registerMcpServer", (t) =>
  t.withAuth({ project: true }).field({
    type: McpServerRef,
    description:
      "Registers an MCP server (Streamable HTTP) under a name, or replaces the one of that name. `headers` (e.g. {\"Authorization\": \"Bearer ...\"}) are sent with each request, stored encrypted (MCP_SECRETS_KEY) and never returned. The URL is checked by the SSRF guard on each call.",
    args: {
      name: t.arg.string({ required: true, description: "The name steps will use for it." }),
      url: t.arg.string({ required: true, description: "The server's Streamable HTTP endpoint." }),
      headers: t.arg({ type: "JSON", required: false, description: "Headers sent with each request, e.g. Authorization; stored encrypted, never shown." }),
    },
    resolve: (_root, args, context) => registerMcpServer(context.app, context.project.id, { name: args.name, url: args.url, headers: args.headers }),
  }),
);

builder.mutationField("removeMcpServer", (t) =>
  t.withAuth({ project: true }).boolean({
    description: "Forgets a registered MCP server and its headers; NOT_FOUND when the project has none of that name.",
    args: { name: t.arg.string({ required: true, description: "The registered name." }) },
    resolve: (_root, args, context) => removeMcpServer(context.app.db, context.project.id, args.name),
  }),
);
