import jsonata from "jsonata";
import { evaluateSlots, type ExpressionSite, type ExpressionSlot } from "./expression-pool.ts";
import type { SourcePath } from "./workflow-source.ts";

export { ExpressionError, closeExpressionPool, warmExpressionPool, type ExpressionSite } from "./expression-pool.ts";

/**
 * `${{ ... }}` expressions, evaluated by JSONata: a sandboxed query language
 * with its own parser and interpreter (no `eval`, no `Function`, no access to
 * process state). The scope is `inputs`, `steps.<id>.output` and, inside a
 * map, `item` and `index`. Evaluation happens off the caller's event loop,
 * with a deadline and memory and size caps (expression-pool.ts).
 */

const EXPRESSION = /\$\{\{([\s\S]*?)\}\}/g;
const WHOLE_EXPRESSION = /^\s*\$\{\{([\s\S]*?)\}\}\s*$/;

export type ExpressionScope = {
  inputs: Record<string, unknown>;
  steps: Record<string, { output: unknown; status: string }>;
  item?: unknown;
  index?: number;
};

/** The names an expression may start with. */
export const SCOPE_ROOTS = ["inputs", "steps", "item", "index"] as const;

export function hasExpression(value: unknown): value is string {
  return typeof value === "string" && value.includes("${{");
}

/** `if: inputs.flag` and `if: "${{ inputs.flag }}"` mean the same. */
export function asExpression(condition: string): string {
  return hasExpression(condition) ? condition : `\${{ ${condition} }}`;
}

/** Every `${{ ... }}` body in a string. */
export function expressionsIn(text: string): string[] {
  return [...text.matchAll(EXPRESSION)].map((match) => match[1]!.trim());
}

/** Where each `${{` that no `}}` closes starts in `text` (an unclosed one would run as literal text). */
export function unclosedExpressions(text: string): number[] {
  const closed: [number, number][] = [...text.matchAll(EXPRESSION)].map((match) => [match.index!, match.index! + match[0].length]);
  const unclosed: number[] = [];
  for (let at = text.indexOf("${{"); at >= 0; at = text.indexOf("${{", at + 1)) {
    if (!closed.some(([start, end]) => at >= start && at < end)) unclosed.push(at);
  }
  return unclosed;
}

/**
 * Every string holding expressions inside a value, with its path, in walk
 * order (arrays by index, objects by key order): the order values come back in.
 */
function stringsIn(value: unknown, path: SourcePath, found: { text: string; path: SourcePath }[] = []) {
  if (typeof value === "string") {
    if (hasExpression(value)) found.push({ text: value, path });
  } else if (Array.isArray(value)) value.forEach((entry, index) => stringsIn(entry, [...path, index], found));
  else if (value && typeof value === "object") for (const [key, entry] of Object.entries(value)) stringsIn(entry, [...path, key], found);
  return found;
}

/** A string that is one whole expression gives that expression's value, of any type. */
function wholeExpression(text: string): string | undefined {
  const whole = WHOLE_EXPRESSION.exec(text);
  return whole && expressionsIn(text).length === 1 ? whole[1]!.trim() : undefined;
}

function slotsOf(strings: { text: string; path: SourcePath }[]): ExpressionSlot[] {
  return strings.flatMap(({ text, path }) => {
    const whole = wholeExpression(text);
    return (whole !== undefined ? [whole] : expressionsIn(text)).map((body) => ({ body, path }));
  });
}

/** Puts evaluated values back in place of the strings that held expressions. */
function rebuild(value: unknown, values: unknown[], cursor = { next: 0 }): unknown {
  if (typeof value === "string") {
    if (!hasExpression(value)) return value;
    if (wholeExpression(value) !== undefined) return values[cursor.next++];
    return value.replace(EXPRESSION, () => {
      const part = values[cursor.next++];
      return part === null || part === undefined ? "" : typeof part === "string" ? part : JSON.stringify(part);
    });
  }
  if (Array.isArray(value)) return value.map((entry) => rebuild(entry, values, cursor));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, rebuild(entry, values, cursor)]));
  return value;
}

const referencesByBody = new Map<string, Reference[]>();
function cachedReferences(body: string): Reference[] | undefined {
  let references = referencesByBody.get(body);
  if (!references) {
    try {
      references = referencesOf(body);
    } catch {
      return undefined;
    }
    if (referencesByBody.size > 5000) referencesByBody.clear();
    referencesByBody.set(body, references);
  }
  return references;
}

/**
 * The part of the scope that expressions can read: every step they name
 * (all of them when one reads `steps` as a whole or the root `$$`). Steps
 * they cannot read are not copied to a thread.
 */
export function scopeReadBy(bodies: string[], scope: ExpressionScope): ExpressionScope {
  const names = new Set<string>();
  for (const body of bodies) {
    const references = body.includes("$$") ? undefined : cachedReferences(body);
    if (!references) return scope;
    for (const [root, name] of references) {
      if (root !== "steps") continue;
      if (name === undefined) return scope;
      names.add(name);
    }
  }
  const steps: ExpressionScope["steps"] = {};
  for (const name of names) if (Object.hasOwn(scope.steps, name)) steps[name] = scope.steps[name]!;
  return { ...scope, steps };
}

/** Every expression body inside a value, in evaluation order. */
export function expressionBodiesIn(value: unknown): string[] {
  return slotsOf(stringsIn(value, [])).map((slot) => slot.body);
}

/**
 * Evaluates every expression inside a JSON value, keeping its shape: a
 * string that is one whole expression becomes its value, expressions inside
 * text are interpolated. Bounded by the expression limits (expression-pool.ts);
 * `site.path` is where the value sits in the file, for the errors.
 */
export async function evaluateValue(value: unknown, scope: ExpressionScope, site: ExpressionSite = { path: [] }): Promise<unknown> {
  const slots = slotsOf(stringsIn(value, site.path));
  if (!slots.length) return value;
  const [values] = await evaluateSlots(slots, scopeReadBy(slots.map((slot) => slot.body), scope), null, site);
  return rebuild(value, values!);
}

export async function evaluateString(text: string, scope: ExpressionScope, site?: ExpressionSite): Promise<unknown> {
  return evaluateValue(text, scope, site);
}

/** Evaluates a value once per variant of the scope (a map's `item` and `index`), in one trip to a thread. */
export async function evaluateForEach(
  value: unknown,
  scope: ExpressionScope,
  variants: Pick<ExpressionScope, "item" | "index">[],
  site: ExpressionSite = { path: [] },
): Promise<unknown[]> {
  const slots = slotsOf(stringsIn(value, site.path));
  if (!slots.length || !variants.length) return variants.map(() => value);
  const values = await evaluateSlots(slots, scopeReadBy(slots.map((slot) => slot.body), scope), variants, site);
  return values.map((each) => rebuild(value, each));
}

/** A path out of the scope that an expression reads, like ["steps", "describe", "output", "text"]. */
export type Reference = string[];

/** Parses an expression and lists the scope paths it reads, for static checks. */
export function referencesOf(source: string): Reference[] {
  const ast = jsonata(source).ast() as AstNode; // throws on a syntax error
  const references: Reference[] = [];
  collect(ast, references);
  return references;
}

type AstNode = { type?: string; value?: unknown; steps?: AstNode[]; stages?: AstNode[]; [key: string]: unknown };

function collect(node: unknown, references: Reference[]) {
  if (!node || typeof node !== "object") return;
  if (Array.isArray(node)) {
    for (const child of node) collect(child, references);
    return;
  }
  const ast = node as AstNode;
  if (ast.type === "path" && Array.isArray(ast.steps)) {
    const [first, ...rest] = ast.steps;
    if (first?.type === "name") {
      // Names after the first are fields of what the first names; names inside
      // predicates are relative to each element, so only the leading run counts.
      const path = [String(first.value)];
      let stagesSeen = Boolean(first.stages?.length);
      for (const step of rest) {
        if (step.type !== "name" || stagesSeen) break;
        path.push(String(step.value));
        stagesSeen = Boolean(step.stages?.length);
      }
      // Later steps (blocks, function calls) run against each element: their names are relative, not scope reads.
      references.push(path);
      return;
    }
    // A path from a variable or a function result: only its first step reads the scope.
    collect(ast.steps[0], references);
    return;
  }
  if (ast.type === "name") {
    references.push([String(ast.value)]);
    return;
  }
  for (const [key, child] of Object.entries(ast)) {
    // Predicates and stages are evaluated against each element: their names are relative.
    if (key === "position" || key === "value" || key === "stages" || key === "predicate") continue;
    collect(child, references);
  }
}
