import { z } from "zod";
import { runInputSchema, type InputSpec } from "../workflows/dsl/input-types.ts";

/**
 * The JSON Schema of a workflow's run input: the same zod schema `runWorkflow` checks with, exported, plus each
 * input's `description` and, for assets, the modality (`x-tessera-modality`) the asset must have.
 */
export function inputJsonSchema(inputs: Record<string, InputSpec>): Record<string, unknown> {
  const schema = z.toJSONSchema(runInputSchema(inputs), { io: "input", unrepresentable: "any" }) as {
    properties?: Record<string, Record<string, unknown>>;
  } & Record<string, unknown>;
  for (const [name, spec] of Object.entries(inputs)) {
    const property = schema.properties?.[name];
    if (!property) continue;
    if (spec.description) property.description = spec.description;
    if (spec.type === "asset") {
      property["x-tessera-type"] = "asset";
      if (spec.modality) property["x-tessera-modality"] = spec.modality;
    }
  }
  return schema;
}
