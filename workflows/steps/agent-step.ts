import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { Prisma } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { runAgent, type AgentTool, type ToolCallRecorder } from "../../services/generation/agent-loop.ts";
import { modelRouterFor } from "../../services/generation/app-model-router.ts";
import { attachmentParts } from "../../services/generation/asset-attachments.ts";
import { checkGenerateRequest } from "../../services/generation/generate-request.ts";
import { UsageMeter } from "../../services/generation/usage-meter.ts";
import { recordStepUsage } from "./generation-step-support.ts";
import { StepDirective, defineStepType, type StepContext, type StepType } from "./step-type.ts";

/** Steps that drive the engine (pause, fan out, wait for a child run) cannot run inside one tool call. */
const NOT_TOOLS = new Set(["agent", "map", "wait", "workflow"]);
const TOOL_NAME = /[^a-zA-Z0-9_-]/g;
const RUN_POLL_MS = 250;

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
    try {
      const tools = [...(await stepTools(input.tools, context)), ...(await workflowTools(input.workflows, context))];
      const attached = await attachmentParts(context.app, router, assets, { usage, signal: context.signal });
      const result = await runAgent({
        router,
        alias: input.model,
        system: input.system,
        prompt: attached.length ? [...attached, { type: "text", text: input.prompt }] : input.prompt,
        tools,
        maxIterations: input.maxIterations,
        tokenBudget: input.tokenBudget,
        timeoutMs: input.timeoutMs,
        outputSchema: input.output,
        usage,
        signal: context.signal,
        onToken: (token) => context.token(token),
        onToolCall: await toolCallRecorder(context),
      });
      return { answer: result.answer, text: result.text, iterations: result.iterations, toolCalls: result.toolCalls };
    } finally {
      await recordStepUsage(context, usage);
    }
  },
});

/** The id of the child row of the call being made, so the tool's own step context can point at it. */
const currentCallRow = new WeakMap<StepContext, string>();

/**
 * Each call becomes a child StepRun, created RUNNING and finished with the
 * call's output or error. Keys carry the attempt, so a retried agent step
 * starts its calls afresh beside the old ones.
 */
async function toolCallRecorder(context: StepContext): Promise<ToolCallRecorder> {
  const parent = await context.app.db.stepRun.findUniqueOrThrow({ where: { id: context.stepRunId } });
  return async (call) => {
    const row = await context.app.db.stepRun.create({
      data: {
        runId: context.runId,
        stepId: context.stepId,
        key: `${parent.key}:attempt-${context.attempt}:call-${call.index}`,
        parentId: parent.id,
        status: "RUNNING",
        attempts: 1,
        input: { tool: call.tool, arguments: call.input } as Prisma.InputJsonValue,
        startedAt: new Date(),
      },
    });
    currentCallRow.set(context, row.id);
    context.log(`tool call ${call.index}: ${call.tool}`);
    return async (result) => {
      await context.app.db.stepRun.updateMany({
        where: { id: row.id, status: "RUNNING" },
        data: result.error
          ? { status: "FAILED", error: result.error as Prisma.InputJsonValue, finishedAt: new Date() }
          : { status: "SUCCEEDED", output: (result.output ?? null) as Prisma.InputJsonValue, finishedAt: new Date() },
      });
    };
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

async function stepTools(names: string[], context: StepContext): Promise<AgentTool[]> {
  // Imported here: the registry imports this file.
  const { findStepType } = await import("./step-registry.ts");
  return names.map((uses) => {
    const type = findStepType(uses) as StepType | undefined;
    if (!type) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `agent tool "${uses}" is not a step type`);
    if (NOT_TOOLS.has(uses)) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `step type "${uses}" cannot be an agent tool`);
    return {
      name: toolName("", uses),
      description: type.description,
      inputSchema: jsonSchemaOf(type.with),
      async run(args, { signal }) {
        const parsed = type.with.safeParse(args);
        if (!parsed.success) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `input does not fit ${uses}: ${z.prettifyError(parsed.error)}`);
        const toolContext: StepContext = { ...context, stepRunId: currentCallRow.get(context) ?? context.stepRunId, signal };
        const result = await type.run(parsed.data, toolContext);
        if (result instanceof StepDirective) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `step type "${uses}" cannot run as a tool`);
        return result;
      },
    };
  });
}

async function workflowTools(slugs: string[], context: StepContext): Promise<AgentTool[]> {
  const { findVersion, startRun, cancelRun } = await import("../engine/run-service.ts");
  const { runInputSchema } = await import("../dsl/input-types.ts");
  const tools: AgentTool[] = [];
  for (const slug of slugs) {
    const version = await findVersion(context.app, context.projectId, slug);
    const definition = version.definition as { description?: string; name?: string; inputs?: Record<string, never> };
    tools.push({
      name: toolName("workflow_", slug),
      description: definition.description ?? definition.name ?? `Run the published workflow "${slug}".`,
      inputSchema: jsonSchemaOf(runInputSchema(definition.inputs ?? {})),
      async run(args, { signal }) {
        // A run of its own, pinned to the version the model was told about; cancelled with the agent.
        const run = await startRun(context.app, { projectId: context.projectId, slug, version: version.number, input: args });
        try {
          while (true) {
            const now = await context.app.db.run.findUniqueOrThrow({ where: { id: run.id } });
            if (now.status === "SUCCEEDED") return { runId: run.id, output: now.output };
            if (now.status === "FAILED" || now.status === "CANCELLED") {
              const error = (now.error as { code?: string; message?: string } | null) ?? {};
              throw new TesseraError(ErrorCode.MODEL_ERROR, `workflow ${slug} run ${run.id} ${now.status.toLowerCase()}: ${error.message ?? ""}`.trim(), { runId: run.id });
            }
            if (now.status === "WAITING") throw new TesseraError(ErrorCode.BAD_USER_INPUT, `workflow ${slug} waits for a person and cannot run as a tool`);
            await sleep(RUN_POLL_MS, undefined, { signal });
          }
        } catch (error) {
          // Out of time, cancelled, or waiting for a person: the run must not go on without its caller.
          await cancelRun(context.app, context.projectId, run.id).catch(() => {});
          throw error;
        }
      },
    });
  }
  return tools;
}
