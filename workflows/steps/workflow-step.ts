import { z } from "zod";
import { defineStepType, StepDirective } from "./step-type.ts";

/** Runs another published workflow of the same project as a child run; its output is this step's output. */
export const workflowStep = defineStepType({
  uses: "workflow",
  description: "Run another published workflow as a child run; the step finishes with the child's outputs.",
  with: z
    .object({
      slug: z.string().min(1),
      version: z.number().int().positive().optional().describe("Pin a version; default: the latest published."),
      input: z.record(z.string(), z.unknown()).default({}),
    })
    .strict(),
  output: z.record(z.string(), z.unknown()),
  async run(input, context) {
    const childRunId = await context.startChildRun({ slug: input.slug, version: input.version, input: input.input });
    return StepDirective.waitForChildRun(childRunId);
  },
});
