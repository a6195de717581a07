import type { Plugin } from "graphql-yoga";
import { workflowJsonSchemaText } from "../../../workflows/dsl/json-schema.ts";

export const WORKFLOW_SCHEMA_PATH = "/schemas/workflow.json";

/** Serves the JSON Schema of workflow files, public, so editors can fetch it (`$schema: http://host/schemas/workflow.json`). */
export function useWorkflowSchema(): Plugin {
  let body: string | undefined;
  return {
    onRequest({ url, request, endResponse, fetchAPI }) {
      if (url.pathname !== WORKFLOW_SCHEMA_PATH || (request.method !== "GET" && request.method !== "HEAD")) return;
      body ??= workflowJsonSchemaText();
      endResponse(
        new fetchAPI.Response(request.method === "HEAD" ? null : body, {
          status: 200,
          headers: { "content-type": "application/schema+json; charset=utf-8", "cache-control": "public, max-age=300" },
        }),
      );
    },
  };
}
