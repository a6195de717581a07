import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { workflowLimits, type WorkflowLimits } from "../workflow-limits.ts";
import { formatPath, type SourcePath } from "./workflow-source.ts";

/**
 * Where expressions evaluate: a small pool of child processes, each with a
 * capped heap. A JSONata expression can loop for ever (tail calls are
 * trampolined) or allocate without bound, and nothing inside JSONata stops
 * it; a process can be stopped from outside. So an expression never runs on
 * the caller's event loop: past its deadline its process is killed (and
 * replaced), past its heap the process dies, and a result larger than the
 * cap is refused; each ends in EXPRESSION_LIMIT naming the expression's
 * line:col. Processes rather than worker threads: a thread's heap cap
 * (`resourceLimits`) is best-effort, and growing one array past it (which is
 * what `[1..10000000]` does) aborts the whole process (nodejs/node#47224).
 * A plain path (`inputs.x`, `steps.a.output.text`) cannot loop or allocate,
 * so it is read on the caller's thread, without a round trip.
 */

/** An expression body and where its text sits in the workflow file. */
export type ExpressionSlot = { body: string; path: SourcePath };

/** Where the evaluated value sits in the file, and how to turn that into line:col (only called when a limit is hit). */
export type ExpressionSite = {
  path: SourcePath;
  locate?: (path: SourcePath, body: string) => Promise<{ line: number; column: number } | undefined>;
};

/** The workflow author's expression failed: their own text and JSONata's reason, safe to show (a TesseraError, so it is not masked). */
export class ExpressionError extends TesseraError {
  constructor(
    readonly expression: string,
    message: string,
  ) {
    super(ErrorCode.BAD_USER_INPUT, `\${{ ${expression} }}: ${message}`);
    this.name = "ExpressionError";
  }
}

type ProcessTask = {
  bodies: string[];
  scope: unknown;
  variants: Record<string, unknown>[] | null;
  maxResultBytes: number;
};
type ProcessResult = { results: string[][] } | { error: { index: number; kind: "expression" | "size" | "stack"; message: string; bytes?: number } };
type ProcessOutcome = ProcessResult | { limit: "time" | "memory"; index: number };

type Pending = { task: ProcessTask & { id: number }; resolve(outcome: ProcessOutcome): void; reject(error: Error): void };
type Evaluator = { child: ChildProcess; job?: Pending; index: number; timer?: NodeJS.Timeout; killedForTime?: boolean };
type Handle = { ref?(): void; unref?(): void } | null | undefined;

const CHILD = fileURLToPath(new URL("./expression-process.mjs", import.meta.url));

/**
 * Up to WORKFLOW_EXPRESSION_PROCESSES child processes, one task each at a time;
 * tasks wait in order for a free one. Idle children are unref'd, so they
 * never keep a process (a test, the CLI) alive.
 */
class ExpressionProcesses {
  private readonly idle: Evaluator[] = [];
  private readonly busy = new Set<Evaluator>();
  private readonly waiting: Pending[] = [];
  private nextId = 0;
  private closed = false;

  /** The limits are read for each expression and each new process, so a changed setting applies to the next one. */
  constructor(private readonly limits: () => WorkflowLimits) {}

  run(task: ProcessTask): Promise<ProcessOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ task: { ...task, id: this.nextId++ }, resolve, reject });
      this.dispatch();
    });
  }

  warm() {
    if (!this.idle.length && !this.busy.size) {
      const evaluator = this.spawn();
      this.idle.push(evaluator);
      evaluator.child.unref();
      (evaluator.child.channel as Handle)?.unref?.();
    }
  }

  close() {
    this.closed = true;
    for (const evaluator of [...this.idle, ...this.busy]) evaluator.child.kill("SIGKILL");
    for (const pending of this.waiting.splice(0)) pending.reject(new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the expression pool is closed"));
  }

  private dispatch() {
    while (this.waiting.length && !this.closed) {
      const evaluator = this.idle.pop() ?? (this.busy.size < this.limits().WORKFLOW_EXPRESSION_PROCESSES ? this.spawn() : undefined);
      if (!evaluator) return;
      const job = this.waiting.shift()!;
      evaluator.job = job;
      evaluator.index = -1;
      this.busy.add(evaluator);
      evaluator.child.ref();
      (evaluator.child.channel as Handle)?.ref?.();
      evaluator.child.send(job.task);
    }
  }

  private spawn(): Evaluator {
    const child = fork(CHILD, [], {
      execArgv: [`--max-old-space-size=${this.limits().WORKFLOW_EXPRESSION_MAX_HEAP_MB}`],
      serialization: "advanced",
      stdio: ["ignore", "ignore", "ignore", "ipc"],
    });
    const evaluator: Evaluator = { child, index: -1 };
    child.on("message", (message: { type: string; id?: number; index?: number } & Partial<{ results: string[][]; error: Extract<ProcessResult, { error: unknown }>["error"] }>) => {
      const job = evaluator.job;
      if (!job || message.id !== job.task.id) return;
      if (message.type === "progress") {
        // The deadline restarts with each expression; time spent waiting for a free process does not count.
        evaluator.index = message.index!;
        clearTimeout(evaluator.timer);
        evaluator.timer = setTimeout(() => {
          evaluator.killedForTime = true;
          child.kill("SIGKILL");
        }, this.limits().WORKFLOW_EXPRESSION_TIMEOUT_MS);
        return;
      }
      this.finish(evaluator, message.error ? { error: message.error } : { results: message.results ?? [] });
      this.idle.push(evaluator);
      child.unref();
      (child.channel as Handle)?.unref?.();
      this.dispatch();
    });
    child.on("exit", () => {
      const at = this.idle.indexOf(evaluator);
      if (at >= 0) this.idle.splice(at, 1);
      // Killed at its deadline, or dead of its heap cap (any other death while evaluating reads as memory too).
      if (evaluator.job) this.finish(evaluator, { limit: evaluator.killedForTime ? "time" : "memory", index: evaluator.index });
      this.dispatch();
    });
    child.on("error", () => {}); // a failed send surfaces as the exit above
    return evaluator;
  }

  private finish(evaluator: Evaluator, outcome: ProcessOutcome) {
    clearTimeout(evaluator.timer);
    const job = evaluator.job;
    evaluator.job = undefined;
    this.busy.delete(evaluator);
    job?.resolve(outcome);
  }
}

let pool: ExpressionProcesses | undefined;

/** Starts one evaluating process ahead of need (a fork and JSONata's load take a while), without waiting for it. */
export function warmExpressionPool(): void {
  if (pool) return;
  pool = new ExpressionProcesses(expressionLimits);
  pool.warm();
}

/** Stops the evaluating processes (tests, shutdown); the next evaluation starts new ones. */
export async function closeExpressionPool(): Promise<void> {
  pool?.close();
  pool = undefined;
}

/** The limits, parsed again only when an expression variable changed: parsing the whole environment per evaluation costs more than a plain path. */
let cachedLimits: { key: string; limits: WorkflowLimits } | undefined;
function expressionLimits(): WorkflowLimits {
  const key = Object.keys(process.env).filter((name) => name.startsWith("WORKFLOW_")).map((name) => `${name}=${process.env[name]}`).join("\n");
  if (cachedLimits?.key !== key) cachedLimits = { key, limits: workflowLimits() };
  return cachedLimits.limits;
}

const KEYWORDS = new Set(["and", "or", "in", "true", "false", "null", "function"]);
const PLAIN_PATH = /^(inputs|steps|item|index)(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** A dotted path of plain names: reading it is a few property lookups. */
function plainPath(body: string): string[] | undefined {
  if (!PLAIN_PATH.test(body)) return undefined;
  const names = body.split(".");
  return names.some((name) => KEYWORDS.has(name)) ? undefined : names;
}

const NOT_PLAIN = Symbol("not plain");

/** JSONata's answer for a plain path over objects; an array on the way maps over its elements, so that goes to a process. */
function readPlainPath(names: string[], scope: Record<string, unknown>): unknown {
  let current: unknown = scope;
  for (const [position, name] of names.entries()) {
    if (position > 0 && Array.isArray(current)) return NOT_PLAIN;
    if (!current || typeof current !== "object" || !Object.hasOwn(current, name)) return null;
    current = (current as Record<string, unknown>)[name];
  }
  return current === undefined ? null : current;
}

/**
 * Evaluates `slots` against `scope` (once, or once per variant: a map's
 * `item` and `index`), giving one list of values per variant, in slot order.
 */
export async function evaluateSlots(
  slots: ExpressionSlot[],
  scope: Record<string, unknown>,
  variants: Record<string, unknown>[] | null,
  site: ExpressionSite,
): Promise<unknown[][]> {
  const limits = expressionLimits();
  const scopes = (variants ?? [{}]).map((variant) => ({ ...scope, ...variant }));
  const results = scopes.map(() => new Array<unknown>(slots.length));
  const remote: number[] = [];
  slots.forEach((slot, index) => {
    const names = plainPath(slot.body);
    const values = names ? scopes.map((each) => readPlainPath(names, each)) : [];
    if (!names || values.includes(NOT_PLAIN)) return void remote.push(index);
    for (const [variant, value] of values.entries()) {
      const json = JSON.stringify(value) ?? "null";
      if (json.length > limits.WORKFLOW_EXPRESSION_MAX_RESULT_BYTES) throw sizeLimit(slot, json.length, limits);
      results[variant]![index] = value !== null && typeof value === "object" ? JSON.parse(json) : value;
    }
  });
  if (!remote.length) return results;

  const bodies = remote.map((index) => slots[index]!.body);
  // The process counts expressions across variants; -1 (it died before the first) names the first.
  const slotOf = (processIndex: number) => slots[remote[Math.max(0, processIndex) % remote.length]!]!;
  pool ??= new ExpressionProcesses(expressionLimits);
  const outcome = await pool.run({ bodies, scope, variants, maxResultBytes: limits.WORKFLOW_EXPRESSION_MAX_RESULT_BYTES });
  if ("limit" in outcome) {
    const slot = slotOf(outcome.index);
    if (outcome.limit === "time") {
      const value = limits.WORKFLOW_EXPRESSION_TIMEOUT_MS;
      throw await limitError(slot, site, { limit: "time", variable: "WORKFLOW_EXPRESSION_TIMEOUT_MS", value }, `ran past its deadline of ${value} ms`);
    }
    const value = limits.WORKFLOW_EXPRESSION_MAX_HEAP_MB;
    throw await limitError(slot, site, { limit: "memory", variable: "WORKFLOW_EXPRESSION_MAX_HEAP_MB", value }, `used more than its ${value} MiB of memory`);
  }
  if ("error" in outcome) {
    const { index, kind, message, bytes } = outcome.error;
    const slot = slotOf(index);
    if (kind === "size") throw await sizeLimitLocated(slot, bytes ?? 0, limits, site);
    if (kind === "stack") throw await limitError(slot, site, { limit: "stack" }, "recursed too deep (rewrite it tail-recursive, or recurse less)");
    throw new ExpressionError(slot.body, message);
  }
  for (const [variant, row] of outcome.results.entries()) {
    for (const [position, json] of row.entries()) results[variant]![remote[position]!] = JSON.parse(json);
  }
  return results;
}

function sizeLimit(slot: ExpressionSlot, bytes: number, limits: WorkflowLimits) {
  // A plain path reads a stored value, so this is rare: name the place without looking up line:col.
  return buildLimitError(slot, undefined, sizeDetails(bytes, limits), sizeMessage(bytes, limits));
}

async function sizeLimitLocated(slot: ExpressionSlot, bytes: number, limits: WorkflowLimits, site: ExpressionSite) {
  return limitError(slot, site, sizeDetails(bytes, limits), sizeMessage(bytes, limits));
}

const sizeDetails = (bytes: number, limits: WorkflowLimits) => ({ limit: "size", variable: "WORKFLOW_EXPRESSION_MAX_RESULT_BYTES", value: limits.WORKFLOW_EXPRESSION_MAX_RESULT_BYTES, bytes });
const sizeMessage = (bytes: number, limits: WorkflowLimits) => `gave ${bytes} bytes of JSON; the limit is ${limits.WORKFLOW_EXPRESSION_MAX_RESULT_BYTES}`;

async function limitError(slot: ExpressionSlot, site: ExpressionSite, details: Record<string, unknown>, what: string): Promise<TesseraError> {
  const position = await site.locate?.(slot.path, slot.body).catch(() => undefined);
  return buildLimitError(slot, position, details, what);
}

function buildLimitError(
  slot: ExpressionSlot,
  position: { line: number; column: number } | undefined,
  details: Record<string, unknown>,
  what: string,
): TesseraError {
  const path = formatPath(slot.path);
  const where = position ? ` at line ${position.line}:${position.column}${path ? ` (${path})` : ""}` : path ? ` at ${path}` : "";
  const body = slot.body.length > 80 ? `${slot.body.slice(0, 77)}...` : slot.body;
  const variable = details.variable ? ` (${details.variable})` : "";
  return new TesseraError(ErrorCode.EXPRESSION_LIMIT, `the expression${where} ${what}${variable}: \${{ ${body} }}`, {
    ...details,
    expression: slot.body,
    path,
    ...(position ?? {}),
  });
}
