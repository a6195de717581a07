import { z } from "zod";
import { InputSpecSchema } from "../dsl/input-types.ts";
import { defineStepType, StepDirective } from "./step-type.ts";

/**
 * Human in the loop: the run pauses (status WAITING) until
 * `resumeRun(id, stepId, input)`. The pause is a row in PostgreSQL, so it
 * survives restarts. `fields` types the input the resume must carry.
 */
export const waitStep = defineStepType({
  uses: "wait",
  description: "Pause the run until resumeRun(id, stepId, input); the resume input is the output.",
  with: z
    .object({
      prompt: z.string().optional().describe("What the person resuming the run is asked."),
      fields: z.record(z.string(), InputSpecSchema).optional().describe("The resume input's fields and their types."),
    })
    .strict(),
  output: z.record(z.string(), z.unknown()),
  outputFieldsOf: (withAsWritten) =>
    withAsWritten.fields && typeof withAsWritten.fields === "object" ? Object.keys(withAsWritten.fields) : undefined,
  async run() {
    return StepDirective.waitForResume();
  },
});
