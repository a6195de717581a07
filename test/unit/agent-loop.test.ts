import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { runAgent, type AgentTool, type ToolCallRecord } from "../../services/generation/agent-loop.ts";
import { loadGenerationConfig } from "../../services/generation/generation-config.ts";
import { ModelRouter } from "../../services/generation/model-router.ts";
import { UsageMeter } from "../../services/generation/usage-meter.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "../support/fake-openai-server.ts";

let fake: FakeOpenAIServer;
let router: ModelRouter;

beforeAll(async () => {
  fake = await startFakeOpenAIServer();
  const config = loadGenerationConfig({ PROVIDER_FAKE_BASE_URL: fake.baseUrl, MODEL_ALIAS_LLM_DEFAULT: "fake:agent-model" });
  config.models["llm.default"]!.retries = 0;
  router = new ModelRouter(config, { modelsDir: "models", logger: pino({ level: "silent" }) });
});
afterAll(async () => {
  await router?.close();
  await fake?.close();
});
afterEach(() => {
  fake.requests.length = 0;
  fake.setFallback(undefined);
});

const library = [
  { id: "a1", text: "a red bicycle leaning on a wall" },
  { id: "a2", text: "a cat asleep on a sofa" },
];

/** Real little tools: the loop is under test, not the tools. */
function tools(log: string[]): AgentTool[] {
  return [
    {
      name: "search",
      description: "Find media by meaning.",
      inputSchema: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
      async run(input) {
        const { query } = input as { query: string };
        log.push(`search:${query}`);
        return { hits: library.filter((item) => query.split(" ").some((word) => item.text.includes(word))).map((item) => ({ assetId: item.id })) };
      },
    },
    {
      name: "describe_asset",
      description: "Describe one asset.",
      inputSchema: { type: "object", properties: { assetId: { type: "string" } }, required: ["assetId"] },
      async run(input) {
        const { assetId } = input as { assetId: string };
        log.push(`describe:${assetId}`);
        const item = library.find((entry) => entry.id === assetId);
        if (!item) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${assetId}`);
        return { description: item.text };
      },
    },
    {
      name: "slow_tool",
      description: "Takes its time.",
      inputSchema: { type: "object" },
      run: () => new Promise((resolve) => setTimeout(() => resolve({ done: true }), 3000)),
    },
  ];
}

const answerSchema = {
  type: "object",
  properties: { answer: { type: "string" }, assetIds: { type: "array", items: { type: "string" } } },
  required: ["answer", "assetIds"],
  additionalProperties: false,
};

describe("agent loop", () => {
  it("calls search, then another tool with what it found, then gives a typed answer", async () => {
    fake.enqueue(
      { kind: "chat", toolCalls: [{ name: "search", arguments: { query: "bicycle" } }], usage: { prompt_tokens: 50, completion_tokens: 10 } },
      (request) => {
        // The second call sees the search result as a tool message.
        const toolMessage = request.body.messages.find((message: any) => message.role === "tool");
        const { output } = JSON.parse(toolMessage.content);
        return { kind: "chat", toolCalls: [{ name: "describe_asset", arguments: { assetId: output.hits[0].assetId } }] };
      },
      { kind: "chat", toolCalls: [{ name: "final_answer", arguments: { answer: "It is a red bicycle.", assetIds: ["a1"] } }] },
    );
    const log: string[] = [];
    const recorded: Array<ToolCallRecord & { result?: unknown }> = [];
    const usage = new UsageMeter();
    const result = await runAgent({
      router,
      alias: "llm.default",
      prompt: "What colour is the bicycle?",
      tools: tools(log),
      maxIterations: 5,
      outputSchema: answerSchema,
      usage,
      onToolCall: async (call) => {
        const entry: ToolCallRecord & { result?: unknown } = { ...call };
        recorded.push(entry);
        return async (outcome) => void (entry.result = outcome);
      },
    });
    expect(result.answer).toEqual({ answer: "It is a red bicycle.", assetIds: ["a1"] });
    expect(result).toMatchObject({ iterations: 3, toolCalls: 2 });
    expect(log).toEqual(["search:bicycle", "describe:a1"]);
    expect(recorded.map(({ index, tool, input, result }) => ({ index, tool, input, result }))).toEqual([
      { index: 1, tool: "search", input: { query: "bicycle" }, result: { output: { hits: [{ assetId: "a1" }] } } },
      { index: 2, tool: "describe_asset", input: { assetId: "a1" }, result: { output: { description: "a red bicycle leaning on a wall" } } },
    ]);
    // The tools were described to the model by their JSON Schemas, plus final_answer with the output schema.
    const sentTools = fake.requests[0]!.body.tools.map((tool: any) => tool.function);
    expect(sentTools.map((tool: any) => tool.name)).toEqual(["search", "describe_asset", "slow_tool", "final_answer"]);
    expect(sentTools[3].parameters).toEqual(answerSchema);
    expect(usage.calls).toHaveLength(3);
    expect(usage.total.promptTokens).toBe(50 + 10 + 10);
  });

  it("cuts off a model that never stops at maxIterations with a clear error", async () => {
    fake.setFallback(() => ({ kind: "chat", toolCalls: [{ name: "search", arguments: { query: "cat" } }] }));
    const log: string[] = [];
    const error = await runAgent({ router, alias: "llm.default", prompt: "loop forever", tools: tools(log), maxIterations: 4, usage: new UsageMeter() }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(TesseraError);
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.message).toMatch(/did not reach an answer within maxIterations \(4 model calls, 4 tool calls\)/);
    expect(error.details).toMatchObject({ reason: "max_iterations" });
    expect(fake.requests).toHaveLength(4);
    expect(log).toHaveLength(4);
  });

  it("gives a tool's error back to the model as a tool result, and the model recovers", async () => {
    fake.enqueue(
      { kind: "chat", toolCalls: [{ name: "describe_asset", arguments: { assetId: "nope" } }, { name: "no_such_tool", arguments: {} }] },
      { kind: "chat", toolCalls: [{ name: "describe_asset", arguments: "{not json" }] },
      { kind: "chat", content: "I could not find that asset." },
    );
    const recorded: unknown[] = [];
    const result = await runAgent({
      router,
      alias: "llm.default",
      prompt: "describe nope",
      tools: tools([]),
      maxIterations: 5,
      usage: new UsageMeter(),
      onToolCall: async () => async (outcome) => void recorded.push(outcome),
    });
    expect(result.answer).toBe("I could not find that asset.");
    const toolResults = fake.requests[1]!.body.messages.filter((message: any) => message.role === "tool").map((message: any) => JSON.parse(message.content));
    expect(toolResults[0]).toEqual({ error: { code: "NOT_FOUND", message: "no asset nope" } });
    expect(toolResults[1].error.message).toMatch(/there is no tool "no_such_tool"/);
    const third = fake.requests[2]!.body.messages.filter((message: any) => message.role === "tool").map((message: any) => JSON.parse(message.content));
    expect(third.at(-1).error.message).toMatch(/not JSON/);
    expect(recorded).toHaveLength(3);
  });

  it("asks again when the final answer does not fit the output schema", async () => {
    fake.enqueue(
      { kind: "chat", toolCalls: [{ name: "final_answer", arguments: { answer: 42 } }] },
      { kind: "chat", toolCalls: [{ name: "final_answer", arguments: { answer: "forty-two", assetIds: [] } }] },
    );
    const result = await runAgent({ router, alias: "llm.default", prompt: "?", tools: [], maxIterations: 3, outputSchema: answerSchema, usage: new UsageMeter() });
    expect(result.answer).toEqual({ answer: "forty-two", assetIds: [] });
    const feedback = fake.requests[1]!.body.messages.at(-1);
    expect(feedback.role).toBe("tool");
    expect(JSON.parse(feedback.content).error.message).toMatch(/does not fit the schema/);
  });

  it("stops when the token budget is spent", async () => {
    fake.setFallback(() => ({ kind: "chat", toolCalls: [{ name: "search", arguments: { query: "cat" } }], usage: { prompt_tokens: 30, completion_tokens: 10 } }));
    const error = await runAgent({ router, alias: "llm.default", prompt: "?", tools: tools([]), maxIterations: 10, tokenBudget: 100, usage: new UsageMeter() }).catch(
      (e) => e,
    );
    expect(error.code).toBe("MODEL_ERROR");
    expect(error.details.reason).toBe("token_budget");
    expect(fake.requests).toHaveLength(3); // 40, 80, 120 > 100
    expect(fake.requests[1]!.body.max_tokens).toBe(60); // what was left of the budget
  });

  it("stops at its timeout, even inside a slow tool", async () => {
    fake.enqueue({ kind: "chat", toolCalls: [{ name: "slow_tool", arguments: {} }] });
    const started = Date.now();
    const error = await runAgent({ router, alias: "llm.default", prompt: "?", tools: tools([]), maxIterations: 5, timeoutMs: 400, usage: new UsageMeter() }).catch(
      (e) => e,
    );
    expect(error.code).toBe("TIMEOUT");
    expect(error.message).toMatch(/did not finish within 400 ms/);
    expect(Date.now() - started).toBeLessThan(2500);
  });
});
