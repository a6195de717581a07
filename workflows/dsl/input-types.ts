import { z } from "zod";
import { modalitySchema } from "../../services/assets/modality.ts";

/** The type of one workflow input, as written under `inputs:` in a workflow file. */
export const InputSpecSchema = z
  .object({
    type: z.enum(["string", "number", "integer", "boolean", "object", "array", "asset"]),
    description: z.string().optional(),
    /** For `asset`: the modality the asset must have. */
    modality: modalitySchema.optional(),
    /** For `string`: the allowed values. */
    enum: z.array(z.string()).min(1).optional(),
    /** For `array`: the most elements accepted. */
    maxItems: z.number().int().nonnegative().optional(),
    /** Inputs are required unless they are marked optional or have a default. */
    required: z.boolean().optional(),
    default: z.unknown().optional(),
  })
  .strict();

export type InputSpec = z.infer<typeof InputSpecSchema>;

function valueSchema(spec: InputSpec): z.ZodType {
  switch (spec.type) {
    case "string":
      return spec.enum ? z.enum(spec.enum as [string, ...string[]]) : z.string();
    case "number":
      return z.number();
    case "integer":
      return z.number().int();
    case "boolean":
      return z.boolean();
    case "object":
      return z.record(z.string(), z.unknown());
    case "array":
      return spec.maxItems === undefined ? z.array(z.unknown()) : z.array(z.unknown()).max(spec.maxItems);
    case "asset":
      return z.uuid({ error: "must be an asset id" });
  }
}

/** A zod schema that checks a run's input against the workflow's declared inputs; unknown keys are refused. */
export function runInputSchema(inputs: Record<string, InputSpec>) {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, spec] of Object.entries(inputs)) {
    let schema = valueSchema(spec);
    if (spec.default !== undefined) schema = schema.default(spec.default as never);
    else if (spec.required === false) schema = schema.optional();
    shape[name] = schema;
  }
  return z.object(shape).strict();
}

/** The field names of an output schema, when it is a closed object; undefined when any field may appear. */
export function knownFields(schema: z.ZodType): string[] | undefined {
  const def = (schema as { def?: { type?: string; catchall?: { def?: { type?: string } } } }).def;
  if (def?.type !== "object") return undefined;
  const catchall = def.catchall?.def?.type;
  if (catchall && catchall !== "never") return undefined;
  return Object.keys((schema as z.ZodObject).shape);
}
