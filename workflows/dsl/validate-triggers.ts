import { expressionsIn, hasExpression, referencesOf, unclosedExpressions } from "./expression.ts";
import type { InputSpec } from "./input-types.ts";
import { TRIGGER_SCOPE_ROOTS } from "./trigger-schema.ts";
import type { SourcePath, WorkflowSource } from "./workflow-source.ts";

const isObject = (value: unknown): value is Record<string, unknown> => Boolean(value) && typeof value === "object" && !Array.isArray(value);

/**
 * What the structure (trigger-schema.ts) cannot say about `on:`: a mapping
 * names declared inputs and its expressions read only what the trigger gives
 * (`body`, `headers` or `asset`); an asset trigger without a mapping needs
 * exactly one asset input; a schedule's fixed input names declared inputs.
 */
export function checkTriggers(source: WorkflowSource, on: unknown, inputs: Record<string, unknown>) {
  if (!isObject(on)) return;
  const inputNames = new Set(Object.keys(inputs));
  const checkNames = (mapping: unknown, at: SourcePath) => {
    if (!isObject(mapping)) return;
    for (const name of Object.keys(mapping)) if (!inputNames.has(name)) source.report([...at, name], `"${name}" is not a declared input`);
  };
  const checkMapping = (mapping: unknown, at: SourcePath, roots: readonly string[]) => {
    if (!isObject(mapping)) return;
    checkNames(mapping, at);
    for (const [name, value] of Object.entries(mapping)) checkValue(source, value, [...at, name], roots);
  };
  if (Array.isArray(on.schedule)) on.schedule.forEach((entry, index) => isObject(entry) && checkMapping(entry.input, ["on", "schedule", index, "input"], []));
  if (isObject(on.webhook)) checkMapping(on.webhook.input, ["on", "webhook", "input"], TRIGGER_SCOPE_ROOTS.webhook);
  if (Array.isArray(on.asset)) {
    const assetInputs = Object.entries(inputs).filter(([, spec]) => isObject(spec) && (spec as InputSpec).type === "asset");
    on.asset.forEach((entry, index) => {
      if (!isObject(entry)) return;
      if (entry.input !== undefined) return checkMapping(entry.input, ["on", "asset", index, "input"], TRIGGER_SCOPE_ROOTS.asset);
      if (assetInputs.length !== 1) {
        source.report(["on", "asset", index], `without an \`input\` mapping the workflow needs exactly one input of type asset (it has ${assetInputs.length})`);
      }
    });
  }
}

function checkValue(source: WorkflowSource, value: unknown, at: SourcePath, roots: readonly string[]) {
  if (Array.isArray(value)) return value.forEach((entry, index) => checkValue(source, entry, [...at, index], roots));
  if (isObject(value)) return Object.entries(value).forEach(([key, entry]) => checkValue(source, entry, [...at, key], roots));
  if (!hasExpression(value)) return;
  if (unclosedExpressions(value).length) source.report(at, `a \${{ without a closing }}`);
  for (const body of expressionsIn(value)) {
    let references: string[][];
    try {
      references = referencesOf(body);
    } catch (error) {
      source.report(at, `expression \${{ ${body} }} does not parse: ${(error as Error).message}`);
      continue;
    }
    for (const [root] of references) {
      if (root && !roots.includes(root)) {
        source.report(at, `\${{ ${body} }} reads "${root}"; ${roots.length ? `this trigger's expressions can read ${roots.join(", ")}` : "a schedule's input is fixed: no expressions"}`);
      }
    }
  }
}
