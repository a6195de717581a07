import { z } from "zod";
import { untilAborted } from "../core/abort.ts";
import { ErrorCode, TesseraError, toErrorRecord, type ErrorRecord } from "../core/errors.ts";
import type { ChatMessage, ContentPart, ToolCall, ToolDefinition } from "./language-model-provider.ts";
import type { ModelRouter } from "./model-router.ts";
import type { UsageMeter } from "./usage-meter.ts";

/** Something the model may call: a step type or a published workflow, described by the JSON Schema of its input. */
export type AgentTool = {
  /** ^[a-zA-Z0-9_-]{1,64}$, what OpenAI-compatible servers accept. */
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  /** `signal` stops the call when the agent is cancelled or out of time. */
  run(input: unknown, call: { signal: AbortSignal; callId: string; index: number }): Promise<unknown>;
  /**
   * A tool whose answer comes later, from elsewhere (a workflow run): `run` only starts it and resolves with what
   * to wait for. The loop then stops, holding nothing, and `runAgentSuspendable` returns an AgentSuspension; the
   * caller resumes it with the tool's result once there is one.
   */
  suspends?: boolean;
};

/** Where a suspended loop stands: enough to go on from the tool's result, as JSON. */
export type AgentState = {
  /** The messages after the system text and the prompt, which are made again from the options. */
  messages: ChatMessage[];
  /** The model call whose reply asked for the tool. */
  iteration: number;
  toolCalls: number;
  /** The call waited for, and those after it in the same reply, still to run. */
  callId: string;
  pending: ToolCall[];
};

/** The loop stopped at a suspending tool: `wait` is what its `run` resolved with. */
export type AgentSuspension = { suspended: true; wait: unknown; index: number; state: AgentState };

/** One tool call as the loop saw it; `onToolCall` records it (a child StepRun) before it runs. */
export type ToolCallRecord = { index: number; tool: string; callId: string; input: unknown };
export type ToolCallRecorder = (call: ToolCallRecord) => Promise<(result: { output?: unknown; error?: ErrorRecord }) => Promise<void>>;

export type AgentOptions = {
  router: ModelRouter;
  alias: string;
  system?: string;
  prompt: string | ContentPart[];
  tools: AgentTool[];
  maxIterations: number;
  /** Total tokens (prompt + completion, every call) the loop may spend. */
  tokenBudget?: number;
  timeoutMs?: number;
  /** JSON Schema of the final answer; without one the answer is the model's text. */
  outputSchema?: Record<string, unknown>;
  usage: UsageMeter;
  signal?: AbortSignal;
  onToken?: (token: string) => void;
  onToolCall?: ToolCallRecorder;
  /** Called with the state before a suspending tool starts, so whoever resumes finds it even if the process dies next. */
  onSuspend?: (state: AgentState, call: { index: number; callId: string; tool: string }) => Promise<void>;
  /** Go on from a suspension with the waited-for tool's result, instead of starting afresh. */
  resume?: { state: AgentState; result: { output?: unknown; error?: ErrorRecord } };
};

export type AgentResult = { answer: unknown; text: string; iterations: number; toolCalls: number };

export const FINAL_ANSWER_TOOL = "final_answer";
/** Tool results are for the model to read: long ones are cut so one search cannot eat the context. */
const MAX_TOOL_RESULT_CHARS = 12_000;

/**
 * A tool-calling loop: ask the model, run the tools it calls, give it their
 * results (a tool's error too: the model may recover), until it answers.
 * Hard limits: `maxIterations` model calls, `tokenBudget` tokens, `timeoutMs`.
 * With an output schema the answer comes through a `final_answer` tool whose
 * parameters are that schema, and is checked against it.
 */
export async function runAgent(options: AgentOptions): Promise<AgentResult> {
  const result = await runAgentSuspendable(options);
  if ("suspended" in result) throw new TesseraError(ErrorCode.INTERNAL, "a suspending tool was called by an agent that cannot be suspended");
  return result;
}

/** `runAgent`, where a tool with `suspends` stops the loop (an AgentSuspension) and `resume` goes on from there. */
export async function runAgentSuspendable(options: AgentOptions): Promise<AgentResult | AgentSuspension> {
  const deadline = options.timeoutMs ? AbortSignal.timeout(options.timeoutMs) : undefined;
  const signals = [options.signal, deadline].filter((signal): signal is AbortSignal => signal !== undefined);
  const signal = signals.length ? AbortSignal.any(signals) : new AbortController().signal;
  const answerSchema = options.outputSchema ? toZod(options.outputSchema) : undefined;
  const tools = new Map(options.tools.map((tool) => [tool.name, tool]));
  const definitions: ToolDefinition[] = options.tools.map((tool) => ({ name: tool.name, description: tool.description, parameters: tool.inputSchema }));
  if (options.outputSchema) {
    definitions.push({ name: FINAL_ANSWER_TOOL, description: "Give the final answer. Call this once, when you are done.", parameters: options.outputSchema });
  }

  const resumed = options.resume;
  // The prompt (attachments' bytes too) is made again from the options: a state keeps only what came after it.
  const messages: ChatMessage[] = [
    { role: "system", content: systemText(options) },
    { role: "user", content: options.prompt },
    ...(resumed ? [...resumed.state.messages, { role: "tool" as const, toolCallId: resumed.state.callId, content: clip(JSON.stringify(resumed.result)) }] : []),
  ];
  let toolCalls = resumed?.state.toolCalls ?? 0;
  const timedOut = () =>
    new TesseraError(ErrorCode.TIMEOUT, `the agent did not finish within ${options.timeoutMs} ms`, { reason: "timeout", iterations: toolCalls });

  /** Runs a reply's tool calls in order: a final answer or a suspension ends the loop; else undefined, and the loop goes on. */
  const runCalls = async (calls: ToolCall[], iteration: number, text: string): Promise<AgentResult | AgentSuspension | undefined> => {
    for (const [position, call] of calls.entries()) {
      if (call.name === FINAL_ANSWER_TOOL && answerSchema) {
        const parsed = parseJson(call.arguments);
        const checked = parsed.ok ? answerSchema.safeParse(parsed.value) : undefined;
        if (checked?.success) return { answer: checked.data, text, iterations: iteration, toolCalls };
        const problem = parsed.ok ? z.prettifyError(checked!.error!) : parsed.error;
        messages.push({ role: "tool", toolCallId: call.id, content: JSON.stringify({ error: { code: "BAD_USER_INPUT", message: `the answer does not fit the schema: ${problem}` } }) });
        continue;
      }
      toolCalls++;
      const tool = tools.get(call.name);
      const parsed = parseJson(call.arguments);
      if (tool?.suspends && parsed.ok) {
        const suspension = await suspendAt(tool, call, parsed.value, { iteration, toolCalls, pending: calls.slice(position + 1) });
        if ("suspended" in suspension) return suspension;
        messages.push({ role: "tool", toolCallId: call.id, content: clip(JSON.stringify(suspension)) });
        continue;
      }
      const result = await callTool(tools, call, toolCalls, options.onToolCall, signal);
      if (deadline?.aborted) throw timedOut();
      messages.push({ role: "tool", toolCallId: call.id, content: clip(JSON.stringify(result)) });
    }
    return undefined;
  };

  /** Records the call, saves the state, starts the tool; a tool that fails to start answers the model like any other. */
  const suspendAt = async (tool: AgentTool, call: ToolCall, input: unknown, at: { iteration: number; toolCalls: number; pending: ToolCall[] }) => {
    const index = at.toolCalls;
    const finish = await options.onToolCall?.({ index, tool: call.name, callId: call.id, input });
    const state: AgentState = { messages: messages.slice(2), iteration: at.iteration, toolCalls: at.toolCalls, callId: call.id, pending: at.pending };
    try {
      await options.onSuspend?.(state, { index, callId: call.id, tool: call.name });
      const wait = await untilAborted(tool.run(input, { signal, callId: call.id, index }), signal, () => new TesseraError(ErrorCode.CANCELLED, "the agent was stopped"));
      return { suspended: true as const, wait, index, state };
    } catch (error) {
      const { code, message } = toErrorRecord(error);
      const result = { error: { code, message } };
      await finish?.(result);
      return result;
    }
  };

  if (resumed) {
    if (deadline?.aborted) throw timedOut();
    const ended = await runCalls(resumed.state.pending, resumed.state.iteration, "");
    if (ended) return ended;
  }
  for (let iteration = (resumed?.state.iteration ?? 0) + 1; iteration <= options.maxIterations; iteration++) {
    if (deadline?.aborted) throw timedOut();
    const remaining = options.tokenBudget === undefined ? undefined : options.tokenBudget - options.usage.total.totalTokens;
    const reply = await options.router
      .chat(
        options.alias,
        { messages, tools: definitions.length ? definitions : undefined, onToken: options.onToken, ...(remaining ? { maxTokens: remaining } : {}) },
        { usage: options.usage, signal },
      )
      .catch((error) => {
        throw deadline?.aborted ? timedOut() : error;
      });
    const spent = options.usage.total.totalTokens;
    if (options.tokenBudget !== undefined && spent > options.tokenBudget) {
      throw new TesseraError(ErrorCode.MODEL_ERROR, `the agent spent ${spent} tokens, over its budget of ${options.tokenBudget}`, {
        reason: "token_budget",
        iterations: iteration,
      });
    }
    messages.push({ role: "assistant", content: reply.text || null, toolCalls: reply.toolCalls });

    if (reply.toolCalls.length === 0) {
      if (!answerSchema) return { answer: reply.text, text: reply.text, iterations: iteration, toolCalls };
      const parsed = parseJson(reply.text);
      const checked = parsed.ok ? answerSchema.safeParse(parsed.value) : undefined;
      if (checked?.success) return { answer: checked.data, text: reply.text, iterations: iteration, toolCalls };
      messages.push({ role: "user", content: `Give your answer by calling ${FINAL_ANSWER_TOOL} with arguments that fit its schema.` });
      continue;
    }

    const ended = await runCalls(reply.toolCalls, iteration, reply.text);
    if (ended) return ended;
  }
  throw new TesseraError(
    ErrorCode.MODEL_ERROR,
    `the agent did not reach an answer within maxIterations (${options.maxIterations} model calls, ${toolCalls} tool calls)`,
    { reason: "max_iterations", iterations: options.maxIterations, toolCalls },
  );
}

/** Runs one call; whatever goes wrong becomes `{ error }` for the model to read, never a crash of the loop. */
async function callTool(
  tools: Map<string, AgentTool>,
  call: ToolCall,
  index: number,
  record: ToolCallRecorder | undefined,
  signal: AbortSignal,
): Promise<{ output?: unknown; error?: ErrorRecord }> {
  const parsed = parseJson(call.arguments);
  const input = parsed.ok ? parsed.value : call.arguments;
  const finish = await record?.({ index, tool: call.name, callId: call.id, input });
  let result: { output?: unknown; error?: ErrorRecord };
  const tool = tools.get(call.name);
  if (!tool) {
    result = { error: { code: ErrorCode.BAD_USER_INPUT, message: `there is no tool "${call.name}"; the tools are: ${[...tools.keys()].join(", ")}` } };
  } else if (!parsed.ok) {
    result = { error: { code: ErrorCode.BAD_USER_INPUT, message: `the arguments are not JSON: ${parsed.error}` } };
  } else {
    try {
      // Stops waiting for a tool that ignores the signal once the agent is cancelled or out of time.
      const output = await untilAborted(tool.run(parsed.value, { signal, callId: call.id, index }), signal, () => new TesseraError(ErrorCode.CANCELLED, "the agent was stopped"));
      result = { output: output ?? null };
    } catch (error) {
      const { code, message } = toErrorRecord(error);
      result = { error: { code, message } };
    }
  }
  await finish?.(result);
  return result;
}

function systemText(options: AgentOptions): string {
  const lines = [
    options.system ?? "You are a careful assistant. Use the tools to find what you need; do not guess.",
    "A tool's result is JSON: { output } when it worked, { error } when it did not (you may try again differently).",
  ];
  if (options.outputSchema) lines.push(`When you are done, call ${FINAL_ANSWER_TOOL} with the answer.`);
  return lines.join("\n");
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text || "{}") };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

function clip(text: string): string {
  return text.length > MAX_TOOL_RESULT_CHARS ? `${text.slice(0, MAX_TOOL_RESULT_CHARS)}... [truncated ${text.length - MAX_TOOL_RESULT_CHARS} characters]` : text;
}

/** The output schema as a validator; a schema zod cannot read is a workflow author's mistake, said plainly. */
function toZod(schema: Record<string, unknown>): z.ZodType {
  try {
    return z.fromJSONSchema(schema as never);
  } catch (error) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, `the agent's output schema is not a JSON Schema it can check: ${(error as Error).message}`);
  }
}
