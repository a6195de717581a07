import { z } from "zod";
import { documentedWorkflowSchema } from "./workflow-schema.ts";

export const WORKFLOW_SCHEMA_ID = "https://tessera.dev/schemas/workflow.json";

/** Any non-string value inside `with` may also be written as an expression, evaluated at run time. */
const EXPRESSION = { type: "string", pattern: "\\$\\{\\{[\\s\\S]*\\}\\}", description: "A ${{ ... }} expression" };

/**
 * The JSON Schema of workflow files, generated from the same zod schemas the
 * validator uses (each step type's `with` included), so editors complete and
 * check files. Written to workflows/schema.json and served at /schemas/workflow.json.
 */
export function workflowJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(documentedWorkflowSchema(), {
    io: "input",
    unrepresentable: "any",
    override(context) {
      const json = context.jsonSchema as Record<string, unknown>;
      const insideWith = context.path.includes("with") && context.path[context.path.length - 1] !== "with";
      if (insideWith && ["number", "integer", "boolean", "array", "object"].includes(json.type as string)) {
        const original = { ...json };
        for (const key of Object.keys(json)) delete json[key];
        json.anyOf = [original, EXPRESSION];
      }
    },
  }) as Record<string, unknown>;
  return { ...schema, $id: WORKFLOW_SCHEMA_ID, title: "Tessera workflow" };
}

export function workflowJsonSchemaText(): string {
  return `${JSON.stringify(workflowJsonSchema(), null, 2)}\n`;
}
