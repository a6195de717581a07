import { evaluateValue, expressionBodiesIn, scopeReadBy, type ExpressionScope, type ExpressionSite } from "../dsl/expression.ts";
import type { SourcePath } from "../dsl/workflow-source.ts";

/** How the planner evaluates a value found at `path` of the workflow file. */
export type EvaluateAt = (value: unknown, scope: ExpressionScope, path: SourcePath) => Promise<unknown>;

/**
 * Lets `advanceRun` plan twice without evaluating under a lock: the first
 * plan, from rows read without locks, evaluates (bounded, in the expression
 * processes) and remembers each outcome, errors included; the second plan,
 * under the run row's lock, gets only remembered outcomes. An evaluation the
 * first plan did not make (the rows changed in between: a step finished)
 * marks the memo `missed`, and the locked plan is thrown away and made again.
 * Outcomes are keyed by what they depend on: the value, its place, and the
 * part of the scope its expressions read.
 */
export class EvaluationMemo {
  private readonly outcomes = new Map<string, Promise<unknown>>();
  /** The locked plan needed an evaluation that was not made beforehand. */
  missed = false;

  constructor(private readonly locate?: ExpressionSite["locate"]) {}

  readonly evaluate: EvaluateAt = (value, scope, path) => {
    const bodies = expressionBodiesIn(value);
    if (!bodies.length) return Promise.resolve(value);
    const key = keyOf(value, bodies, scope, path);
    let outcome = this.outcomes.get(key);
    if (!outcome) {
      outcome = evaluateValue(value, scope, { path, locate: this.locate });
      outcome.catch(() => {}); // read by the plans; kept here only to be replayed
      this.outcomes.set(key, outcome);
    }
    return outcome;
  };

  readonly remembered: EvaluateAt = async (value, scope, path) => {
    const bodies = expressionBodiesIn(value);
    if (!bodies.length) return value;
    const outcome = this.outcomes.get(keyOf(value, bodies, scope, path));
    if (outcome) return outcome;
    this.missed = true;
    return null;
  };
}

function keyOf(value: unknown, bodies: string[], scope: ExpressionScope, path: SourcePath): string {
  return JSON.stringify([path, value, scopeReadBy(bodies, scope)]);
}
