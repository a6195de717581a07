import { z } from "zod";
import { defineStepType } from "./step-type.ts";

/**
 * Templating and JSON mapping: `with` is evaluated like every step's input,
 * and the result is the output. `with: { title: "Notes on ${{ inputs.topic }}" }`
 * gives `steps.<id>.output.title`.
 */
export const transformStep = defineStepType({
  uses: "transform",
  description: "Build a value from inputs and earlier outputs: every key of `with`, evaluated, is a field of the output.",
  with: z.record(z.string(), z.unknown()),
  output: z.record(z.string(), z.unknown()),
  outputFieldsOf: (withAsWritten) => Object.keys(withAsWritten),
  async run(input) {
    return input;
  },
  inline: (input) => input,
});
