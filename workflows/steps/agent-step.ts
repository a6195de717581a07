import { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { runAgentSuspendable, type AgentTool, type ToolCallRecorder } from "../../services/generation/agent-loop.ts";
import { modelRouterFor } from "../../services/generation/app-model-router.ts";
import { attachmentParts } from "../../services/generation/asset-attachments.ts";
import { checkGenerateRequest } from "../../services/generation/generate-request.ts";
import { UsageMeter } from "../../services/generation/usage-meter.ts";
import { openMcpServer } from "../../services/mcp-client/mcp-servers.ts";
import type { McpSession } from "../../services/mcp-client/mcp-session.ts";
import { runInputSchema } from "../dsl/input-types.ts";
import { latestSuspension, restoreUsage, saveSuspension, type SavedAgent } from "./agent-suspension.ts";
import { recordStepUsage } from "./generation-step-support.ts";
import { StepDirective, defineStepType, type StepContext } from "./step-type.ts";

/** Steps that drive the engine (pause, fan out, wait for a child run) cannot run inside one tool call. */
const NOT_TOOLS = new Set(["agent", "map", "wait", "workflow"]);
const TOOL_NAME = /[^a-zA-Z0-9_-]/g;

/**
 * A tool-calling loop over a language model. Its tools are step types (by
 * `uses`) and published workflows (by slug), described to the model by the
 * JSON Schema of their inputs. Each call is a child StepRun of this step with
 * its input and output; a tool's error goes back to the model, not up.
 */
export const agentStep = defineStepType({
  uses: "agent",
  description:
    "Let a language model answer by calling tools (step types and published workflows) in a loop, within maxIterations, a token budget and a timeout.",
  with: z
    .object({
      prompt: z.string().min(1),
      system: z.string().optional(),
      model: z.string().default("llm.default").describe("A model alias whose provider supports tool calls."),
      attachments: z.array(z.uuid()).max(16).default([]).describe("Assets the model sees with the prompt."),
      tools: z.array(z.string()).default([]).describe("Step types the model may call, e.g. [search, generate.caption]."),
      workflows: z.array(z.string()).default([]).describe("Slugs of published workflows the model may run."),
      mcp: z.array(z.string()).max(10).default([]).describe("Registered MCP servers (registerMcpServer) whose tools the model may call."),
      maxIterations: z.number().int().min(1).max(50).default(8).describe("Most model calls before the step fails."),
      tokenBudget: z.number().int().positive().optional().describe("Most tokens (prompt + completion, all calls) the step may spend."),
      timeoutMs: z.number().int().positive().max(3_600_000).default(300_000),
      output: z.record(z.string(), z.unknown()).optional().describe("JSON Schema of the answer; the model must give one that fits."),
    })
    .strict(),
  output: z
    .object({
      answer: z.unknown().describe("The typed answer when `output` is given, else the model's text."),
      text: z.string(),
      iterations: z.number().int(),
      toolCalls: z.number().int(),
    })
    .strict(),
  async run(input, context) {
    const router = modelRouterFor(context.app);
    const { assets } = await checkGenerateRequest(context.app, context.projectId, { task: "TEXT", prompt: input.prompt, attachments: input.attachments, model: input.model });
    const usage = new UsageMeter();
    // Each call's child row, by call index: a step run as a tool points its own context at it.
    const callRows = new Map<number, string>();
    // Waiting for a workflow it called, this step holds no worker: the run's end queues it again, to go on from here.
    const suspension = await latestSuspension(context);
    if (suspension && !suspension.result) {
      // Queued again before the run ended (a re-delivered job), or the process died before the run was started.
      const { slug, version } = suspension.saved.workflow;
      const childRunId = await context.startChildRun({ slug, version, input: suspension.arguments as Record<string, unknown>, toolCallRowId: suspension.rowId });
      return StepDirective.waitForChildRun(childRunId);
    }
    const resumed = suspension?.result ? { state: suspension.saved.state, result: suspension.result } : undefined;
    const attempt = suspension?.saved.attempt ?? context.attempt;
    const deadlineAt = suspension?.saved.deadlineAt ?? Date.now() + input.timeoutMs;
    const charged = resumed ? await restoreUsage(context, usage) : 0;
    /** The workflow (slug, version) behind each `workflow_` tool name. */
    const workflowOfTool = new Map<string, { slug: string; version: number }>();
    const sessions: McpSession[] = [];
    try {
      const tools = [
        ...stepTools(input.tools, context, callRows),
        ...(await workflowTools(input.workflows, context, callRows, workflowOfTool)),
        ...(await mcpTools(input.mcp, context, sessions)),
      ];
      const attached = await attachmentParts(context.app, router, assets, { usage, signal: context.signal });
      const result = await runAgentSuspendable({
        router,
        alias: input.model,
        system: input.system,
        prompt: attached.length ? [...attached, { type: "text", text: input.prompt }] : input.prompt,
        tools,
        maxIterations: input.maxIterations,
        tokenBudget: input.tokenBudget,
        timeoutMs: Math.max(1, deadlineAt - Date.now()),
        outputSchema: input.output,
        usage,
        signal: context.signal,
        onToken: (token) => context.token(token),
        onToolCall: toolCallRecorder(context, callRows, attempt),
        resume: resumed,
        async onSuspend(state, call) {
          const workflow = workflowOfTool.get(call.tool);
          const rowId = callRows.get(call.index);
          if (!workflow || !rowId) throw new TesseraError(ErrorCode.INTERNAL, `tool ${call.tool} cannot wait`);
          const saved: SavedAgent = { state, attempt, deadlineAt, workflow };
          await saveSuspension(context, rowId, saved);
        },
      });
      if ("suspended" in result) return StepDirective.waitForChildRun(result.wait as string);
      return { answer: result.answer, text: result.text, iterations: result.iterations, toolCalls: result.toolCalls };
    } finally {
      await Promise.all(sessions.map((session) => session.close()));
      await recordStepUsage(context, usage, charged);
    }
  },
});

/** Each call is stored as a child row of the step (the engine keys it by attempt and index) and finished with its result. */
function toolCallRecorder(context: StepContext, callRows: Map<number, string>, attempt: number): ToolCallRecorder {
  return async (call) => {
    const row = await context.recordToolCall({ index: call.index, tool: call.tool, input: call.input, attempt });
    callRows.set(call.index, row.id);
    context.log(`tool call ${call.index}: ${call.tool}`);
    return (result) => row.finish(result);
  };
}

function toolName(prefix: string, name: string) {
  return `${prefix}${name.replace(TOOL_NAME, "_")}`.slice(0, 64);
}

/** JSON Schema of a zod input; a shape JSON Schema cannot say becomes "anything", and the step checks it anyway. */
function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
}

function stepTools(names: string[], context: StepContext, callRows: Map<number, string>): AgentTool[] {
  return names.map((uses) => {
    const type = context.findStepType(uses);
    if (!type) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `agent tool "${uses}" is not a step type`);
    if (NOT_TOOLS.has(uses)) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `step type "${uses}" cannot be an agent tool`);
    return {
      name: toolName("", uses),
      description: type.description,
      inputSchema: jsonSchemaOf(type.with),
      async run(args, { signal, index }) {
        const parsed = type.with.safeParse(args);
        if (!parsed.success) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `input does not fit ${uses}: ${z.prettifyError(parsed.error)}`);
        const toolContext: StepContext = { ...context, stepRunId: callRows.get(index) ?? context.stepRunId, signal };
        const result = await type.run(parsed.data, toolContext);
        if (result instanceof StepDirective) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `step type "${uses}" cannot run as a tool`);
        return result;
      },
    };
  });
}

async function workflowTools(
  slugs: string[],
  context: StepContext,
  callRows: Map<number, string>,
  workflowOfTool: Map<string, { slug: string; version: number }>,
): Promise<AgentTool[]> {
  const tools: AgentTool[] = [];
  for (const slug of slugs) {
    const workflow = await context.findWorkflow(slug);
    const name = toolName("workflow_", slug);
    workflowOfTool.set(name, { slug, version: workflow.version });
    tools.push({
      name,
      description: workflow.description ?? workflow.name ?? `Run the published workflow "${slug}".`,
      inputSchema: jsonSchemaOf(runInputSchema(workflow.inputs)),
      // A child run of the call's row, pinned to the version the model was told about (and within WORKFLOW_MAX_DEPTH):
      // the agent stops until it ends, and is cancelled with the agent's run.
      suspends: true,
      run: (args, { index }) =>
        context.startChildRun({ slug, version: workflow.version, input: (args ?? {}) as Record<string, unknown>, toolCallRowId: callRows.get(index) }),
    });
  }
  return tools;
}

/**
 * The tools of the named MCP servers, listed once per run over one connection per server, as `mcp_<server>_<tool>`.
 * A result with isError goes back to the model like any tool's answer; unreachable servers fail the step.
 */
async function mcpTools(servers: string[], context: StepContext, sessions: McpSession[]): Promise<AgentTool[]> {
  const tools: AgentTool[] = [];
  for (const server of new Set(servers)) {
    if (server.includes("://")) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `agent mcp: "${server}" must be a registered server's name (registerMcpServer), not a URL`);
    const session = await openMcpServer(context.app, context.projectId, server, context.signal);
    sessions.push(session);
    for (const tool of await session.listTools()) {
      tools.push({
        name: toolName(`mcp_${server}_`, tool.name),
        description: (tool.description ?? tool.title ?? `The ${tool.name} tool of MCP server ${server}.`).slice(0, 1024),
        inputSchema: tool.inputSchema as Record<string, unknown>,
        run: (args, { signal }) => session.callTool(tool.name, (args ?? {}) as Record<string, unknown>, signal),
      });
    }
  }
  return tools;
}
