import { z } from "zod";

/**
 * Limits that keep a hostile or mistaken workflow from exhausting the
 * service. Read once from the environment, so an operator can raise them.
 */
const LimitsSchema = z.object({
  /** Largest workflow file accepted, in bytes. */
  WORKFLOW_MAX_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** YAML aliases resolved per file: a "billion laughs" file needs many. */
  WORKFLOW_MAX_ALIASES: z.coerce.number().int().nonnegative().default(100),
  /** Most steps in one file. */
  WORKFLOW_MAX_STEPS: z.coerce.number().int().positive().default(500),
  /** Most items one `map` step fans out over. */
  WORKFLOW_MAX_MAP_ITEMS: z.coerce.number().int().positive().default(10_000),
  /** Most concurrent items of one `map` step. */
  WORKFLOW_MAX_MAP_CONCURRENCY: z.coerce.number().int().positive().default(100),
  /** Largest step input or output, as JSON, in bytes: they are stored in PostgreSQL. */
  WORKFLOW_MAX_VALUE_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  /** How deep `workflow` steps may nest child runs (A runs B runs C ...): a loop of workflows stops here. */
  WORKFLOW_MAX_DEPTH: z.coerce.number().int().positive().default(8),
  /** Deadline of one expression's evaluation, in milliseconds: past it, its thread is stopped and replaced. */
  WORKFLOW_EXPRESSION_TIMEOUT_MS: z.coerce.number().int().positive().default(1000),
  /** Heap of each expression thread, in MiB: an expression that allocates past it is stopped. */
  WORKFLOW_EXPRESSION_MAX_HEAP_MB: z.coerce.number().int().min(16).default(128),
  /** Largest value one expression may give, as JSON, in bytes. */
  WORKFLOW_EXPRESSION_MAX_RESULT_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  /** Child processes that evaluate expressions, per Tessera process. */
  WORKFLOW_EXPRESSION_PROCESSES: z.coerce.number().int().positive().default(2),
  /** Step timeout when a step sets none, in milliseconds. */
  WORKFLOW_DEFAULT_STEP_TIMEOUT_MS: z.coerce.number().int().positive().default(10 * 60_000),
});

export type WorkflowLimits = z.infer<typeof LimitsSchema>;

const LIMIT_NAMES = Object.keys(LimitsSchema.shape);
let parsed: { values: (string | undefined)[]; limits: WorkflowLimits } | undefined;

/** The limits as the environment sets them now; parsed again only when one of their variables changed (each step reads them). */
export function workflowLimits(env: NodeJS.ProcessEnv = process.env): WorkflowLimits {
  // Compared value by value: no object or JSON key built per call (several calls per workflow step and expression).
  if (parsed && LIMIT_NAMES.every((name, index) => env[name] === parsed!.values[index])) return parsed.limits;
  const values = LIMIT_NAMES.map((name) => env[name]);
  const set = Object.fromEntries(LIMIT_NAMES.flatMap((name, index) => (values[index] === undefined || values[index] === "" ? [] : [[name, values[index]]])));
  parsed = { values, limits: LimitsSchema.parse(set) };
  return parsed.limits;
}
