import type { z } from "zod";
import type { AppContext } from "../../services/app/app-context.ts";
import type { ErrorRecord } from "../../services/core/errors.ts";
import type { Logger } from "../../services/core/logger.ts";
import type { InputSpec } from "../dsl/input-types.ts";

/** What a step's `run` sees besides its input. */
export type StepContext = {
  app: AppContext;
  logger: Logger;
  projectId: string;
  runId: string;
  /** The StepRun row's id: a stable key for idempotent effects. */
  stepRunId: string;
  stepId: string;
  attempt: number;
  /** Aborted when the run is cancelled or the step times out. */
  signal: AbortSignal;
  /** A log line for `runEvents` subscribers. */
  log(message: string): void;
  /** A piece of streamed generated text for `runEvents` subscribers. */
  token(text: string): void;

  // What the steps that drive others (`workflow`, `agent`) ask of the engine; steps import nothing of it.
  /** The step types a workflow may use (an agent's tools are some of them). */
  findStepType(uses: string): StepType | undefined;
  /**
   * Starts this step's child run, once per step row however often the step runs; its id, to wait for. With
   * `toolCallRowId` (an agent's call, a child row of this step) the run hangs from that row instead: its end
   * finishes the row and runs this step again, to resume.
   */
  startChildRun(request: { slug: string; version?: number; input: Record<string, unknown>; toolCallRowId?: string }): Promise<string>;
  /** Stores one agent tool call as a child row of this step, RUNNING until it is finished; `attempt` (default: this one) keys it. */
  recordToolCall(call: { index: number; tool: string; input: unknown; attempt?: number }): Promise<ToolCallRow>;
  /** A published workflow of this project (the latest version), as an agent is told about it. */
  findWorkflow(slug: string): Promise<PublishedWorkflow>;
  /**
   * Runs a published workflow on its own and resolves with its output once
   * it succeeds; it fails if the run fails or waits for a person, and the
   * run is cancelled when `signal` aborts.
   */
  runWorkflow(request: { slug: string; version: number; input: unknown }, signal: AbortSignal): Promise<{ runId: string; output: unknown }>;
};

/** An agent's tool call as a child StepRun: its id, and how it ends. */
export type ToolCallRow = {
  id: string;
  finish(result: { output?: unknown; error?: ErrorRecord }): Promise<void>;
};

export type PublishedWorkflow = { version: number; name?: string; description?: string; inputs: Record<string, InputSpec> };

/**
 * What a step returns instead of an output when the engine must take over:
 * pause for a person, fan out over items, or wait for a child run.
 */
export class StepDirective {
  private constructor(readonly directive: DirectiveKind) {}

  /** Pause the run until `resumeRun(id, stepId, input)`; the input becomes the step's output. */
  static waitForResume(): StepDirective {
    return new StepDirective({ kind: "wait" });
  }

  /** Run `template` once per item, at most `concurrency` at a time; the output is `{ results }` in item order. */
  static fanOut(items: unknown[], template: StepTemplate, concurrency: number): StepDirective {
    return new StepDirective({ kind: "fan-out", items, template, concurrency });
  }

  /** The step finishes when the child run does, with the child run's output. */
  static waitForChildRun(childRunId: string): StepDirective {
    return new StepDirective({ kind: "child-run", childRunId });
  }
}

export type DirectiveKind =
  | { kind: "wait" }
  | { kind: "fan-out"; items: unknown[]; template: StepTemplate; concurrency: number }
  | { kind: "child-run"; childRunId: string };

/** A step as written inside a `map`: no id and no needs, the map supplies them. */
export type StepTemplate = {
  uses: string;
  with?: Record<string, unknown>;
  retry?: { attempts: number; backoffMs: number };
  timeout?: number | string;
};

/**
 * One step type: its `with` and output shapes (zod, from which the JSON
 * Schema and the static checks come) and what it does. Adding a step type is
 * one file that exports one of these, listed in `step-registry.ts`.
 */
export type StepType<With extends z.ZodType = z.ZodType, Output extends z.ZodType = z.ZodType> = {
  uses: string;
  description: string;
  with: With;
  output: Output;
  /** A `with` key that holds a nested step run per item (`map`): checked as a step, evaluated later with `item`/`index`. */
  templateKey?: string;
  /** Output fields known from the step's `with` as written, when the output schema is open (`transform`). */
  outputFieldsOf?(withAsWritten: Record<string, unknown>): string[] | undefined;
  run(input: z.infer<With>, context: StepContext): Promise<z.infer<Output> | StepDirective>;
  /**
   * The output from the input alone, for a step with no side effects, no I/O and no context (`transform`): the
   * engine computes it in the advance that readies the step and stores it in that advance's commit, without a
   * job. `run` must give the same output; it is what runs when such a step is queued anyway.
   */
  inline?(input: z.infer<With>): z.infer<Output>;
};

/** Keeps the input and output types of a step type's `run` tied to its schemas. */
export function defineStepType<With extends z.ZodType, Output extends z.ZodType>(type: StepType<With, Output>) {
  return type;
}
