import type { StepType } from "./step-type.ts";
import { encodeStep } from "./encode-step.ts";
import { generationSteps } from "./generation-steps.ts";
import { httpStep } from "./http-step.ts";
import { ingestStep } from "./ingest-step.ts";
import { mapStep } from "./map-step.ts";
import { mcpCallStep } from "./mcp-call-step.ts";
import { searchStep } from "./search-step.ts";
import { searchUpsertStep } from "./search-upsert-step.ts";
import { speechSegmentsStep } from "./speech-segments-step.ts";
import { transformStep } from "./transform-step.ts";
import { waitStep } from "./wait-step.ts";
import { workflowStep } from "./workflow-step.ts";

/**
 * Every step type a workflow may `use`. Adding one is a file beside this one
 * and a line here; the JSON Schema, the validator and the engine follow.
 */
export const stepTypes: StepType[] = [
  transformStep,
  httpStep,
  mcpCallStep,
  waitStep,
  mapStep,
  workflowStep,
  ingestStep,
  encodeStep,
  searchStep,
  searchUpsertStep,
  speechSegmentsStep,
  ...generationSteps,
] as StepType[];

export function findStepType(uses: string): StepType | undefined {
  return stepTypes.find((type) => type.uses === uses);
}

/** Adds a step type at run time (tests, plug-ins); a name can be registered once. */
export function registerStepType(type: StepType) {
  if (findStepType(type.uses)) throw new Error(`step type "${type.uses}" is already registered`);
  stepTypes.push(type);
}
