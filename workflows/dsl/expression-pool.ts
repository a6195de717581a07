import { fork, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { constants as osConstants } from "node:os";
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
 *
 * The limits bound the expression's own work, never the machine's state: the
 * deadline counts the CPU time the evaluating process spent on the expression
 * (read from /proc; wall time where there is none), so a process starved of
 * CPU on a loaded machine is given the time it did not get, up to a wall-clock
 * bound past which the evaluation fails SERVICE_UNAVAILABLE (retryable), not
 * EXPRESSION_LIMIT. A process that dies of something other than its deadline
 * or its heap (a signal from outside, say) is replaced and the evaluation sent
 * again; the processes ignore SIGINT, SIGTERM and SIGHUP, so a Ctrl-C or a
 * deploy's SIGTERM to the process group leaves them to the parent's drain.
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
type ProcessOutcome = ProcessResult | { limit: "time" | "memory"; index: number } | { unavailable: string };

type Pending = { task: ProcessTask & { id: number }; resolve(outcome: ProcessOutcome): void; reject(error: Error): void; tries: number };
type Evaluator = {
  child: ChildProcess;
  job?: Pending;
  index: number;
  timer?: NodeJS.Timeout;
  /** Why this process killed it: its expression's deadline, or the wall-clock bound (no progress, or starved of CPU). */
  killedFor?: "time" | "wall";
  /** The process's CPU time (µs) when the current expression started, by its own count. */
  cpuAtStart?: number;
  /** When the current expression (or, before its first, the task) was sent or started. */
  startedAt?: number;
};
type Handle = { ref?(): void; unref?(): void } | null | undefined;

/** Deaths that are the expression's own: V8 aborts when a heap cap or an array size limit is passed. */
const EXPRESSION_DEATHS = new Set<string>(["SIGABRT", "SIGTRAP", "SIGILL", "SIGSEGV"]);
/** How often an evaluation is sent again after its process died of something else (a signal from outside). */
const RETRIES_AFTER_FOREIGN_DEATH = 2;
/** The wall-clock bound of one expression (and of a task's wait for its process to start): the CPU deadline times this, at least 30 s. */
const WALL_FACTOR = 20;
const MIN_WALL_MS = 30_000;

/** The CPU time (user + system, µs) a process has used, from /proc; undefined where there is none (not Linux) or it is gone. */
async function cpuTimeOf(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined || process.platform !== "linux") return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime (fields 14 and 15 of the file; 12 and 13 after the name and state), in clock ticks.
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
/** _SC_CLK_TCK: 100 on every Linux Node supports. */
const CLOCK_TICKS = 100;

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
      this.waiting.push({ task: { ...task, id: this.nextId++ }, resolve, reject, tries: 0 });
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
      // Until its first expression starts (a new process loads JSONata first), only the wall-clock bound applies.
      evaluator.startedAt = Date.now();
      evaluator.cpuAtStart = undefined;
      this.arm(evaluator, job, this.wallMs());
    }
  }

  private spawn(): Evaluator {
    const child = fork(CHILD, [], {
      execArgv: [`--max-old-space-size=${this.limits().WORKFLOW_EXPRESSION_MAX_HEAP_MB}`],
      serialization: "advanced",
      stdio: ["ignore", "ignore", "ignore", "ipc"],
    });
    const evaluator: Evaluator = { child, index: -1 };
    child.on("message", (message: { type: string; id?: number; index?: number; cpu?: number } & Partial<{ results: string[][]; error: Extract<ProcessResult, { error: unknown }>["error"] }>) => {
      const job = evaluator.job;
      if (!job || message.id !== job.task.id) return;
      if (message.type === "progress") {
        // The deadline restarts with each expression; time spent waiting for a free process does not count.
        evaluator.index = message.index!;
        evaluator.startedAt = Date.now();
        evaluator.cpuAtStart = message.cpu;
        this.arm(evaluator, job, this.limits().WORKFLOW_EXPRESSION_TIMEOUT_MS);
        return;
      }
      this.finish(evaluator, message.error ? { error: message.error } : { results: message.results ?? [] });
      this.idle.push(evaluator);
      child.unref();
      (child.channel as Handle)?.unref?.();
      this.dispatch();
    });
    child.on("exit", (code, signal) => {
      const at = this.idle.indexOf(evaluator);
      if (at >= 0) this.idle.splice(at, 1);
      const job = evaluator.job;
      if (job) {
        if (evaluator.killedFor === "time") this.finish(evaluator, { limit: "time", index: evaluator.index });
        else if (evaluator.killedFor === "wall") this.finish(evaluator, { unavailable: "an expression process got too little CPU time to finish (the machine is overloaded)" });
        else if ((signal && EXPRESSION_DEATHS.has(signal)) || (code !== null && code >= 128 && EXPRESSION_DEATHS.has(signalName(code - 128)))) {
          // V8 aborts the process when the expression passes its heap cap.
          this.finish(evaluator, { limit: "memory", index: evaluator.index });
        } else {
          // Killed from outside, or exited: not the expression's doing. A new process evaluates it again, a few times.
          this.finish(evaluator, undefined);
          if (job.tries++ < RETRIES_AFTER_FOREIGN_DEATH && !this.closed) this.waiting.unshift(job);
          else job.resolve({ unavailable: `the expression process exited (${signal ?? `code ${code}`}) while evaluating` });
        }
      }
      this.dispatch();
    });
    child.on("error", () => {}); // a failed send surfaces as the exit above
    return evaluator;
  }

  private finish(evaluator: Evaluator, outcome: ProcessOutcome | undefined) {
    clearTimeout(evaluator.timer);
    const job = evaluator.job;
    evaluator.job = undefined;
    this.busy.delete(evaluator);
    if (outcome) job?.resolve(outcome);
  }

  private wallMs() {
    return Math.max(MIN_WALL_MS, WALL_FACTOR * this.limits().WORKFLOW_EXPRESSION_TIMEOUT_MS);
  }

  /**
   * Checks the evaluation after `ms`: past its CPU deadline, the process is killed (EXPRESSION_LIMIT); short of
   * it (the process was waiting for a CPU, or this event loop was late), it is checked again when the rest of the
   * deadline could have been spent, up to the wall-clock bound (then SERVICE_UNAVAILABLE).
   */
  private arm(evaluator: Evaluator, job: Pending, ms: number) {
    clearTimeout(evaluator.timer);
    const index = evaluator.index;
    evaluator.timer = setTimeout(() => {
      // A result already in the pipe is read first (the poll phase comes before setImmediate's).
      setImmediate(() => void this.check(evaluator, job, index));
    }, ms);
  }

  private async check(evaluator: Evaluator, job: Pending, index: number) {
    const current = () => evaluator.job === job && evaluator.index === index;
    if (!current()) return;
    const deadline = this.limits().WORKFLOW_EXPRESSION_TIMEOUT_MS;
    const wallSpent = Date.now() - (evaluator.startedAt ?? Date.now());
    const started = index >= 0 && evaluator.cpuAtStart !== undefined;
    const cpu = started ? await cpuTimeOf(evaluator.child.pid) : undefined;
    if (!current()) return;
    const kill = (reason: "time" | "wall") => {
      evaluator.killedFor = reason;
      evaluator.child.kill("SIGKILL");
    };
    if (index < 0) return wallSpent >= this.wallMs() ? kill("wall") : this.arm(evaluator, job, this.wallMs() - wallSpent);
    // No CPU figure (no /proc): the deadline is wall time, as it always was.
    if (cpu === undefined) return kill("time");
    const spentMs = (cpu - evaluator.cpuAtStart!) / 1000;
    if (spentMs >= deadline) return kill("time");
    if (wallSpent >= this.wallMs()) return kill("wall");
    this.arm(evaluator, job, Math.max(20, deadline - spentMs));
  }
}

let pool: ExpressionProcesses | undefined;

/** Starts one evaluating process ahead of need (a fork and JSONata's load take a while), without waiting for it. */
export function warmExpressionPool(): void {
  if (pool) return;
  pool = new ExpressionProcesses(workflowLimits);
  pool.warm();
}

/** Stops the evaluating processes (tests, shutdown); the next evaluation starts new ones. */
export async function closeExpressionPool(): Promise<void> {
  pool?.close();
  pool = undefined;
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
  // As the environment sets them now: workflowLimits parses again only when one of its variables changed.
  const limits = workflowLimits();
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
  pool ??= new ExpressionProcesses(workflowLimits);
  const outcome = await pool.run({ bodies, scope, variants, maxResultBytes: limits.WORKFLOW_EXPRESSION_MAX_RESULT_BYTES });
  if ("unavailable" in outcome) throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `${outcome.unavailable}; retry later`);
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

/** A signal's name from its number (an exit code of 128 + n). */
function signalName(number: number): string {
  return Object.entries(osConstants.signals).find(([, value]) => value === number)?.[0] ?? "";
}
