import { z } from "zod";
import { stepTypes } from "../steps/step-registry.ts";
import { InputSpecSchema } from "./input-types.ts";
import { TriggersSchema } from "./trigger-schema.ts";

/** Ids are JSONata names, so `steps.<id>.output` reads without quoting. */
const Identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "use letters, digits and _ (not starting with a digit)");

export const RetrySchema = z
  .object({
    attempts: z.number().int().min(1).max(20).describe("Total tries, the first included."),
    backoffMs: z.number().int().min(0).default(1000).describe("Delay before the second try; doubles each try."),
  })
  .strict();

/** A number of seconds, or "500ms", "30s", "5m", "1h". */
export const DurationSchema = z.union([z.number().positive(), z.string().regex(/^\d+(ms|s|m|h)$/, 'a duration like "30s"')]);

const stepFields = {
  id: Identifier,
  name: z.string().optional(),
  uses: z.string().min(1),
  with: z.record(z.string(), z.unknown()).default({}),
  needs: z.array(z.string()).default([]).describe("Steps that must finish first; steps read in expressions are needed too."),
  if: z.union([z.boolean(), z.string()]).optional().describe("An expression; when false the step is skipped."),
  retry: RetrySchema.optional(),
  timeout: DurationSchema.optional(),
};

export const StepSchema = z.object(stepFields).strict();

const workflowFields = {
  $schema: z.string().optional(),
  apiVersion: z.literal("tessera/v1"),
  kind: z.literal("Workflow"),
  slug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and -, at most 63"),
  name: z.string().optional(),
  description: z.string().optional(),
  inputs: z.record(Identifier, InputSpecSchema).default({}),
  on: TriggersSchema.optional().describe("What starts runs besides runWorkflow: schedule, webhook, asset."),
  mcp: z.boolean().optional().describe("true: offered as a tool of Tessera's MCP server (/mcp), named by the slug, its input schema from `inputs`."),
  steps: z.array(StepSchema).min(1),
  outputs: z.record(Identifier, z.unknown()).default({}).describe("Values of the run's output, usually expressions."),
};

/** The structure of a workflow file; each step's `with` is checked against its type afterwards. */
export const WorkflowSchema = z.object(workflowFields).strict();

export type WorkflowDefinition = z.infer<typeof WorkflowSchema>;
export type WorkflowStep = z.infer<typeof StepSchema>;

/** The same format with each step type's `with` spelled out: the source of the published JSON Schema. */
export function documentedWorkflowSchema() {
  const steps = stepTypes.map((type) =>
    z
      .object({ ...stepFields, uses: z.literal(type.uses), with: type.with })
      .strict()
      .describe(type.description),
  );
  return z
    .object({ ...workflowFields, steps: z.array(z.union(steps as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]])).min(1) })
    .strict();
}

export function durationMs(duration: number | string): number {
  if (typeof duration === "number") return duration * 1000;
  const match = /^(\d+)(ms|s|m|h)$/.exec(duration)!;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
  return Number(match[1]) * unit;
}
