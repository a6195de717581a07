import { z } from "zod";
import { workflowLimits } from "../workflow-limits.ts";
import { defineStepType, StepDirective, type StepTemplate } from "./step-type.ts";

export const StepTemplateSchema = z
  .object({
    uses: z.string().min(1),
    with: z.record(z.string(), z.unknown()).optional(),
    retry: z.object({ attempts: z.number().int().min(1).max(20), backoffMs: z.number().int().min(0).default(1000) }).optional(),
    timeout: z.union([z.number().positive(), z.string().regex(/^\d+(ms|s|m|h)$/)]).optional(),
  })
  .strict();

/**
 * Runs one step per item of a list, `concurrency` at a time, each with
 * `item` and `index` in scope; the output keeps the items' order.
 */
export const mapStep = defineStepType({
  uses: "map",
  description: "Run `step` once per element of `items` (with `item` and `index` in scope), at most `concurrency` at a time.",
  with: z
    .object({
      items: z
        .array(z.unknown())
        .check((context) => {
          const limit = workflowLimits().WORKFLOW_MAX_MAP_ITEMS;
          if (context.value.length > limit) {
            context.issues.push({ code: "custom", message: `map over ${context.value.length} items; the limit is ${limit}`, input: context.value });
          }
        })
        .describe("The list to fan out over."),
      concurrency: z.number().int().min(1).default(4),
      step: StepTemplateSchema.describe("The step to run per item; its `with` may use `item` and `index`."),
    })
    .strict(),
  output: z.object({ results: z.array(z.unknown()) }).strict(),
  templateKey: "step",
  async run(input) {
    const limits = workflowLimits();
    const concurrency = Math.min(input.concurrency, limits.WORKFLOW_MAX_MAP_CONCURRENCY);
    return StepDirective.fanOut(input.items, input.step as StepTemplate, concurrency);
  },
});
