import { describe, expect, it } from "vitest";
import { STEP_TYPES } from "../../studio/src/workflow-graph.ts";
import { stepTypes } from "../../workflows/steps/step-registry.ts";

describe("the studio's step palette", () => {
  it("offers every step type the engine registers, and no other", () => {
    expect([...STEP_TYPES].sort()).toEqual(stepTypes.map((type) => type.uses).sort());
  });
});
