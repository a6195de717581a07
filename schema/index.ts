import { builder } from "./builder.ts";
// Each import adds one domain's types and fields to the builder.
import "./health.ts";
import "./jobs.ts";
import "./assets.ts";
import "./search.ts";
import "./workflows.ts";
import "./generate.ts";
import "./models.ts";
import "./keys.ts";
import "./mcp-servers.ts";
import "./triggers.ts";
import "./webhooks.ts";

export const schema = builder.toSchema({ sortSchema: true });
