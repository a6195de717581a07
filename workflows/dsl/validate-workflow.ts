import type { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { findStepType, stepTypes } from "../steps/step-registry.ts";
import { StepTemplateSchema } from "../steps/map-step.ts";
import type { StepType } from "../steps/step-type.ts";
import { workflowLimits } from "../workflow-limits.ts";
import { asExpression, expressionsIn, hasExpression, referencesOf, unclosedExpressions } from "./expression.ts";
import { knownFields } from "./input-types.ts";
import { checkTriggers } from "./validate-triggers.ts";
import { formatPath, WorkflowSource, type Problem, type SourcePath } from "./workflow-source.ts";
import { WorkflowSchema, type WorkflowDefinition } from "./workflow-schema.ts";

export type ValidationResult = { definition?: WorkflowDefinition; problems: Problem[] };

type RawStep = { id?: unknown; uses?: unknown; with?: unknown; needs?: unknown; if?: unknown };

const isObject = (value: unknown): value is Record<string, unknown> =>
  Boolean(value) && typeof value === "object" && !Array.isArray(value);

/**
 * Checks a workflow file and reports every problem at once, each with its
 * line and column: structure, unknown step types, duplicate ids, missing or
 * circular `needs`, `with` values against each step type's schema, and every
 * expression's references to inputs, steps and output fields.
 */
export function validateWorkflow(text: string): ValidationResult {
  const source = new WorkflowSource(text);
  if (source.problems.length) return { problems: source.problems };
  const raw = source.value;
  const structure = WorkflowSchema.safeParse(raw);
  if (!structure.success) reportZodIssues(source, [], structure.error.issues);
  if (isObject(raw)) checkSemantics(source, raw);
  const problems = dedupe(source.problems).sort((a, b) => a.line - b.line || a.column - b.column);
  return problems.length || !structure.success ? { problems } : { definition: structure.data, problems };
}

/** Parses and validates, or throws INVALID_WORKFLOW with every problem in `details.problems`. */
export function parseWorkflow(text: string): WorkflowDefinition {
  const { definition, problems } = validateWorkflow(text);
  if (!definition) {
    const first = problems[0];
    throw new TesseraError(
      ErrorCode.INVALID_WORKFLOW,
      `the workflow has ${problems.length} problem${problems.length === 1 ? "" : "s"}` +
        (first ? `; first: ${first.line}:${first.column} ${first.message}` : ""),
      { problems },
    );
  }
  return definition;
}

function checkSemantics(source: WorkflowSource, raw: Record<string, unknown>) {
  const limits = workflowLimits();
  const inputNames = new Set(isObject(raw.inputs) ? Object.keys(raw.inputs) : []);
  const steps: RawStep[] = Array.isArray(raw.steps) ? raw.steps.filter(isObject) : [];
  if (steps.length > limits.WORKFLOW_MAX_STEPS) {
    source.report(["steps"], `${steps.length} steps; the limit is ${limits.WORKFLOW_MAX_STEPS}`);
  }

  const indexById = new Map<string, number>();
  steps.forEach((step, index) => {
    if (typeof step.id !== "string") return;
    if (indexById.has(step.id)) source.report(["steps", index, "id"], `duplicate step id "${step.id}" (first at steps[${indexById.get(step.id)}])`);
    else indexById.set(step.id, index);
  });
  const typeOf = (id: string) => {
    const step = steps[indexById.get(id) ?? -1];
    return typeof step?.uses === "string" ? findStepType(step.uses) : undefined;
  };

  const dependencies = new Map<string, Set<string>>();
  steps.forEach((step, index) => {
    const at: SourcePath = ["steps", index];
    const id = typeof step.id === "string" ? step.id : undefined;
    const depends = new Set<string>();
    if (Array.isArray(step.needs)) {
      step.needs.forEach((need, needIndex) => {
        if (typeof need !== "string") return;
        if (need === id) source.report([...at, "needs", needIndex], `step "${id}" needs itself`);
        else if (!indexById.has(need)) source.report([...at, "needs", needIndex], `needs "${need}", which is not a step`);
        else depends.add(need);
      });
    }
    const context: ReferenceContext = { source, inputNames, indexById, typeOf, selfId: id, depends, insideMap: false };
    if (typeof step.if === "string") checkExpressions(context, asExpression(step.if), [...at, "if"]);
    const type = checkUses(source, step.uses, [...at, "uses"]);
    if (type && isObject(step.with ?? {})) checkWith(context, type, (step.with ?? {}) as Record<string, unknown>, [...at, "with"]);
    // An unknown type's `with` cannot be checked against a schema, but its expressions can.
    else if (!type && step.with !== undefined) checkStrings(context, step.with, [...at, "with"]);
    if (id && !dependencies.has(id)) dependencies.set(id, depends);
    if (type?.uses === "workflow" && isObject(step.with) && step.with.slug === raw.slug) {
      source.report([...at, "with", "slug"], `step "${id}" runs this workflow itself: it would never end`);
    }
  });

  if (isObject(raw.outputs)) {
    for (const [name, value] of Object.entries(raw.outputs)) {
      const context: ReferenceContext = { source, inputNames, indexById, typeOf, depends: new Set(), insideMap: false };
      checkStrings(context, value, ["outputs", name]);
    }
  }
  reportCycles(source, dependencies, indexById);
  checkTriggers(source, raw.on, isObject(raw.inputs) ? raw.inputs : {});
}

function checkUses(source: WorkflowSource, uses: unknown, at: SourcePath): StepType | undefined {
  if (typeof uses !== "string") return undefined;
  const type = findStepType(uses);
  if (!type) source.report(at, `unknown step type "${uses}"; known: ${stepTypes.map((known) => known.uses).join(", ")}`);
  return type;
}

/** Checks `with` against the step type's schema, leaving expression values to run time, then its expressions. */
function checkWith(context: ReferenceContext, type: StepType, withValue: Record<string, unknown>, at: SourcePath) {
  const result = type.with.safeParse(withValue);
  if (!result.success) {
    const issues = result.error.issues.filter((issue) => !touchesExpression(withValue, issue.path));
    reportZodIssues(context.source, at, issues);
  }
  for (const [key, value] of Object.entries(withValue)) {
    if (key === type.templateKey) {
      checkTemplate(context, value, [...at, key]);
      continue;
    }
    checkStrings(context, value, [...at, key]);
  }
}

/** A map's per-item step: a step type of its own, whose expressions may use `item` and `index`. */
function checkTemplate(context: ReferenceContext, template: unknown, at: SourcePath) {
  if (!isObject(template)) return; // the map's schema reports it
  const structure = StepTemplateSchema.safeParse(template);
  if (!structure.success) reportZodIssues(context.source, at, structure.error.issues.filter((issue) => issue.path[0] !== "with"));
  const type = checkUses(context.source, template.uses, [...at, "uses"]);
  const withValue = template.with ?? {};
  if (type && isObject(withValue)) checkWith({ ...context, insideMap: true }, type, withValue, [...at, "with"]);
}

type ReferenceContext = {
  source: WorkflowSource;
  inputNames: Set<string>;
  indexById: Map<string, number>;
  typeOf(id: string): StepType | undefined;
  selfId?: string;
  /** Filled with the steps the expressions read: they become dependencies. */
  depends: Set<string>;
  insideMap: boolean;
};

function checkStrings(context: ReferenceContext, value: unknown, at: SourcePath) {
  if (typeof value === "string") {
    if (hasExpression(value)) checkExpressions(context, value, at);
  } else if (Array.isArray(value)) {
    value.forEach((entry, index) => checkStrings(context, entry, [...at, index]));
  } else if (isObject(value)) {
    for (const [key, entry] of Object.entries(value)) checkStrings(context, entry, [...at, key]);
  }
}

function checkExpressions(context: ReferenceContext, text: string, at: SourcePath) {
  const { source } = context;
  for (const index of unclosedExpressions(text)) {
    const occurrence = text.slice(0, index).split("${{").length - 1;
    const position = source.locateWithin(at, "${{", occurrence);
    source.problems.push({ ...position, path: formatPath(at), message: `"${text.slice(index, index + 40)}": a \${{ without a closing }} (it would run as plain text)` });
  }
  const bodies = expressionsIn(text);
  for (const body of bodies) {
    let references: string[][];
    try {
      references = referencesOf(body);
    } catch (error) {
      source.report(at, `expression \${{ ${body} }} does not parse: ${(error as Error).message}`);
      continue;
    }
    for (const reference of references) checkReference(context, body, reference, at);
  }
}

function checkReference(context: ReferenceContext, body: string, [root, name, field, subfield]: string[], at: SourcePath) {
  const { source } = context;
  const where = `\${{ ${body} }}`;
  switch (root) {
    case "inputs":
      if (name !== undefined && !context.inputNames.has(name)) source.report(at, `${where} reads inputs.${name}, which is not a declared input`);
      return;
    case "item":
    case "index":
      if (!context.insideMap) source.report(at, `${where} reads ${root}, which exists only inside a map's step`);
      return;
    case "steps": {
      if (name === undefined) return;
      if (!context.indexById.has(name)) {
        source.report(at, `${where} reads steps.${name}, which is not a step`);
        return;
      }
      if (name === context.selfId) {
        source.report(at, `${where}: step "${name}" reads its own output`);
        return;
      }
      context.depends.add(name);
      if (field !== undefined && field !== "output" && field !== "status") {
        source.report(at, `${where} reads steps.${name}.${field}; a step has "output" and "status"`);
        return;
      }
      if (field === "output" && subfield !== undefined) {
        const type = context.typeOf(name);
        const stepIndex = context.indexById.get(name)!;
        const fields = type ? (knownFields(type.output) ?? outputFieldsFromWith(context, type, stepIndex)) : undefined;
        if (fields && !fields.includes(subfield)) {
          source.report(at, `${where} reads steps.${name}.output.${subfield}; ${type!.uses} outputs ${fields.join(", ") || "no fields"}`);
        }
      }
      return;
    }
    default:
      source.report(at, `${where} reads "${root}"; expressions can read inputs, steps${context.insideMap ? ", item and index" : ""}`);
  }
}

function outputFieldsFromWith(context: ReferenceContext, type: StepType, stepIndex: number): string[] | undefined {
  const raw = context.source.value as { steps: RawStep[] };
  const withValue = raw.steps[stepIndex]?.with;
  return isObject(withValue) ? type.outputFieldsOf?.(withValue) : undefined;
}

function touchesExpression(value: unknown, path: PropertyKey[]): boolean {
  let current = value;
  for (const key of path) {
    if (hasExpression(current)) return true;
    if (!current || typeof current !== "object") return false;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return hasExpression(current);
}

function reportZodIssues(source: WorkflowSource, at: SourcePath, issues: z.core.$ZodIssue[]) {
  for (const issue of issues) {
    const path = [...at, ...(issue.path as (string | number)[])];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) source.report([...path, key], `unknown field "${key}"`);
      continue;
    }
    source.report(path, path.length ? `${lastName(path)}: ${issue.message}` : issue.message);
  }
}

function lastName(path: SourcePath): string {
  const last = path[path.length - 1];
  return typeof last === "number" ? `[${last}]` : String(last);
}

/** Reports each cycle once, at the first step of it in file order. */
function reportCycles(source: WorkflowSource, dependencies: Map<string, Set<string>>, indexById: Map<string, number>) {
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (id: string) => {
    state.set(id, "visiting");
    stack.push(id);
    for (const next of dependencies.get(id) ?? []) {
      if (state.get(next) === "visiting") {
        const cycle = [...stack.slice(stack.indexOf(next)), next];
        const first = cycle.slice(0, -1).sort((a, b) => indexById.get(a)! - indexById.get(b)!)[0]!;
        source.report(["steps", indexById.get(first)!, "needs"], `cycle: ${cycle.join(" -> ")}`);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(id, "done");
  };
  for (const id of dependencies.keys()) if (!state.has(id)) visit(id);
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${problem.line}:${problem.column}:${problem.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The steps each step depends on: its `needs` plus the steps its expressions read. */
export function stepDependencies(definition: WorkflowDefinition): Map<string, Set<string>> {
  const dependencies = new Map<string, Set<string>>();
  for (const step of definition.steps) {
    const depends = new Set(step.needs);
    const collect = (value: unknown) => {
      if (typeof value === "string") {
        const bodies = hasExpression(value) ? expressionsIn(value) : [];
        for (const body of bodies) for (const [root, name] of referencesOf(body)) if (root === "steps" && name) depends.add(name);
      } else if (Array.isArray(value)) value.forEach(collect);
      else if (isObject(value)) Object.values(value).forEach(collect);
    };
    collect(step.with);
    if (typeof step.if === "string") collect(asExpression(step.if));
    depends.delete(step.id);
    dependencies.set(step.id, depends);
  }
  return dependencies;
}
