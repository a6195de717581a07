import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { workflowJsonSchema, workflowJsonSchemaText } from "../../workflows/dsl/json-schema.ts";
import { stepTypes } from "../../workflows/steps/step-registry.ts";

describe("the workflow JSON Schema", () => {
  it("is up to date in workflows/schema.json (regenerate: npx tsx workflows/dsl/print-json-schema.ts)", () => {
    const committed = fs.readFileSync(new URL("../../workflows/schema.json", import.meta.url), "utf8");
    expect(committed).toBe(workflowJsonSchemaText());
  });

  it("spells out each step type's `with`, and lets values inside it be expressions", () => {
    const schema = workflowJsonSchema() as any;
    const variants = schema.properties.steps.items.anyOf;
    expect(variants.map((variant: any) => variant.properties.uses.const).sort()).toEqual(stepTypes.map((type) => type.uses).sort());
    const map = variants.find((variant: any) => variant.properties.uses.const === "map");
    expect(map.properties.with.properties.concurrency.anyOf[1].pattern).toContain("\\$\\{\\{");
    expect(schema.required).toEqual(expect.arrayContaining(["apiVersion", "kind", "slug", "steps"]));
  });
});
