import jsonata from "jsonata";

/**
 * `${{ ... }}` expressions, evaluated by JSONata: a sandboxed query language
 * with its own parser and interpreter (no `eval`, no `Function`, no access to
 * process state). The scope is `inputs`, `steps.<id>.output` and, inside a
 * map, `item` and `index`.
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

const compiled = new Map<string, jsonata.Expression>();
function compile(source: string): jsonata.Expression {
  let expression = compiled.get(source);
  if (!expression) {
    expression = jsonata(source);
    if (compiled.size > 5000) compiled.clear();
    compiled.set(source, expression);
  }
  return expression;
}

export class ExpressionError extends Error {
  constructor(
    readonly expression: string,
    message: string,
  ) {
    super(`\${{ ${expression} }}: ${message}`);
    this.name = "ExpressionError";
  }
}

async function evaluateOne(source: string, scope: ExpressionScope): Promise<unknown> {
  try {
    const result = await compile(source).evaluate(scope);
    return normalize(result);
  } catch (error) {
    throw new ExpressionError(source, (error as { message?: string }).message ?? String(error));
  }
}

/** JSONata marks sequences with extra properties; give plain JSON back. */
function normalize(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === "function") return null;
  return JSON.parse(JSON.stringify(value) ?? "null");
}

/**
 * A string that is one whole expression evaluates to the expression's value,
 * of any type; a string with expressions inside text becomes text.
 */
export async function evaluateString(text: string, scope: ExpressionScope): Promise<unknown> {
  const whole = WHOLE_EXPRESSION.exec(text);
  if (whole && expressionsIn(text).length === 1) return evaluateOne(whole[1]!.trim(), scope);
  let result = "";
  let last = 0;
  for (const match of text.matchAll(EXPRESSION)) {
    result += text.slice(last, match.index);
    const value = await evaluateOne(match[1]!.trim(), scope);
    result += value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
    last = match.index! + match[0].length;
  }
  return result + text.slice(last);
}

/** Evaluates every expression inside a JSON value, keeping its shape. */
export async function evaluateValue(value: unknown, scope: ExpressionScope): Promise<unknown> {
  if (typeof value === "string") return hasExpression(value) ? evaluateString(value, scope) : value;
  if (Array.isArray(value)) return Promise.all(value.map((entry) => evaluateValue(entry, scope)));
  if (value && typeof value === "object") {
    const entries = await Promise.all(
      Object.entries(value).map(async ([key, entry]) => [key, await evaluateValue(entry, scope)] as const),
    );
    return Object.fromEntries(entries);
  }
  return value;
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
