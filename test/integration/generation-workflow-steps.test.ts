import fs from "node:fs/promises";
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ingestContent } from "../../services/assets/ingest-service.ts";
import type { FakeOpenAIServer } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { findStepType } from "../../workflows/steps/step-registry.ts";
import { eventually, type TestApp } from "../support/test-app.ts";
import { workflowClient } from "../support/workflow-client.ts";

let t: TestApp;
let fake: FakeOpenAIServer;
let key: string;
let projectId: string;
let harness: FakeProviderApp;
let workflows: ReturnType<typeof workflowClient>;

beforeAll(async () => {
  harness = await startFakeProviderApp({
    models: {
      "llm.default": { provider: "fake", model: "agent-model", retries: 0 },
      "llm.vision": { provider: "fake", model: "vision-model", retries: 0 },
    },
    app: { worker: { concurrency: 4 } },
  });
  ({ t, fake } = harness);
  ({ key, projectId } = await t.createProject());
  workflows = workflowClient(t, key);
});

afterAll(() => harness?.close());

afterEach(() => fake.reset());

const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** runEvents over SSE until the run ends. */
async function collectRunEvents(runId: string): Promise<any[]> {
  const response = await fetch(t.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: `subscription ($id: ID!) { runEvents(id: $id) { type stepId token status } }`, variables: { id: runId } }),
  });
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((block) => block.includes("event: next"))
    .map((block) => JSON.parse(block.split("\n").find((line) => line.startsWith("data: "))!.slice(6)).data.runEvents);
}

async function image(colour: string) {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: colour } }).png().toBuffer();
  return (await ingestContent(t.app, projectId, { bytes: png, modality: "IMAGE", mimeType: "image/png", source: "upload" })).asset;
}

describe("generate.* steps", () => {
  it("captions an image, then speaks the caption into an audio asset, recording token usage per step", async () => {
    const slug = unique("describe-aloud");
    await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  image: { type: asset, modality: IMAGE }
steps:
  - id: describe
    uses: generate.caption
    with: { asset: "\${{ inputs.image }}" }
  - id: speak
    uses: generate.speech
    with: { text: "\${{ steps.describe.output.text }}" }
outputs:
  caption: "\${{ steps.describe.output.text }}"
  audio: "\${{ steps.speak.output.assetId }}"
`);
    const asset = await image("#f80");
    // A slow first byte, so the subscription is open before the tokens flow.
    fake.enqueue({ kind: "chat", content: "An orange square.", delayMs: 1500, usage: { prompt_tokens: 85, completion_tokens: 4 } });
    const started = await t.graphql(`mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`, { slug, input: { image: asset.id } }, key);
    const runId = started.data.runWorkflow.id as string;
    const events = await collectRunEvents(runId);
    const run = await workflows.ended(runId);
    expect(run.error).toBeNull();
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output).toMatchObject({ caption: "An orange square." });
    const tokens = events.filter((event) => event.token && event.stepId === "describe").map((event) => event.token);
    expect(tokens.join("")).toBe("An orange square.");
    expect(tokens.length).toBeGreaterThan(1);
    const describe = run.steps.find((step) => step.stepId === "describe")!;
    expect(describe.usage).toMatchObject({ promptTokens: 85, completionTokens: 4, totalTokens: 89 });
    const audio = await t.app.db.asset.findFirstOrThrow({ where: { id: (run.output as { audio: string }).audio, projectId } });
    expect(audio).toMatchObject({ modality: "AUDIO", mimeType: "audio/wav" });
    expect(audio.metadata).toMatchObject({ generated: { task: "SPEECH", runId: run.id, stepId: "speak" } });
  });
});

describe("agent step", () => {
  it("calls a step type, then a published workflow, then answers in the declared shape; each call is a child step", async () => {
    const helper = unique("shout");
    await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${helper}
description: Turns a text into capitals.
inputs:
  text: { type: string }
steps:
  - id: upper
    uses: transform
    with: { loud: "\${{ $uppercase(inputs.text) }}" }
outputs:
  loud: "\${{ steps.upper.output.loud }}"
`);
    const slug = unique("agent-qa");
    await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  question: { type: string }
steps:
  - id: answer
    uses: agent
    with:
      prompt: "\${{ inputs.question }}"
      tools: [generate.caption]
      workflows: [${helper}]
      maxIterations: 5
      output:
        type: object
        properties: { answer: { type: string }, assetIds: { type: array, items: { type: string } } }
        required: [answer, assetIds]
outputs:
  answer: "\${{ steps.answer.output.answer.answer }}"
  assets: "\${{ steps.answer.output.answer.assetIds }}"
`);
    const asset = await image("#08f");
    fake.enqueue(
      { kind: "chat", toolCalls: [{ name: "generate_caption", arguments: { asset: asset.id } }], usage: { prompt_tokens: 100, completion_tokens: 10 } },
      { kind: "chat", content: "A blue square." }, // the caption tool's own model call
      (request) => {
        const result = JSON.parse(request.body.messages.at(-1).content);
        return { kind: "chat", toolCalls: [{ name: `workflow_${helper}`, arguments: { text: result.output.text } }] };
      },
      (request) => {
        const result = JSON.parse(request.body.messages.at(-1).content);
        return { kind: "chat", toolCalls: [{ name: "final_answer", arguments: { answer: result.output.output.loud, assetIds: [asset.id] } }] };
      },
    );
    const run = await workflows.runToEnd(slug, { question: "What is in my picture, loudly?" });
    expect(run.error).toBeNull();
    expect(run.output).toEqual({ answer: "A BLUE SQUARE.", assets: [asset.id] });

    const agentRow = run.steps.find((step) => step.key === "answer")!;
    expect(agentRow.output).toMatchObject({ answer: { answer: "A BLUE SQUARE.", assetIds: [asset.id] }, iterations: 3, toolCalls: 2 });
    const calls = run.steps.filter((step) => step.parentId === agentRow.id);
    expect(calls.map((call) => [call.key, call.status])).toEqual([
      ["answer:attempt-1:call-1", "SUCCEEDED"],
      ["answer:attempt-1:call-2", "SUCCEEDED"],
    ]);
    expect(calls[0]!.input).toEqual({ tool: "generate_caption", arguments: { asset: asset.id } });
    expect(calls[0]!.output).toMatchObject({ text: "A blue square.", model: "llm.vision" });
    expect(calls[1]!.output).toMatchObject({ output: { loud: "A BLUE SQUARE." } });
    // The tools were described by the JSON Schema of their inputs.
    const tools = fake.requests.at(-1)!.body.tools.map((tool: any) => tool.function);
    expect(tools.find((tool: any) => tool.name === "generate_caption").parameters).toMatchObject({
      type: "object",
      properties: { asset: { type: "string", format: "uuid" } },
      required: ["asset"],
    });
    expect(tools.find((tool: any) => tool.name === `workflow_${helper}`)).toMatchObject({
      description: "Turns a text into capitals.",
      parameters: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
    });
    // Usage per row: the agent's three model calls on its row, the caption's call on the tool call's row.
    expect((agentRow.usage as { calls: unknown[]; promptTokens: number }).calls).toHaveLength(3);
    expect((agentRow.usage as { promptTokens: number }).promptTokens).toBe(100 + 10 + 10);
    expect(calls[0]!.usage).toMatchObject({ calls: [{ alias: "llm.vision", capability: "caption" }] });
  });

  it("gives a failing tool's error to the model, which answers anyway; the failed call is recorded", async () => {
    const slug = unique("agent-recover");
    await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: answer
    uses: agent
    with: { prompt: "caption asset 0", tools: [generate.caption], maxIterations: 3 }
outputs:
  text: "\${{ steps.answer.output.answer }}"
`);
    const foreign = "00000000-0000-4000-8000-000000000000";
    fake.enqueue(
      { kind: "chat", toolCalls: [{ name: "generate_caption", arguments: { asset: foreign } }] },
      (request) => {
        const { error } = JSON.parse(request.body.messages.at(-1).content);
        return { kind: "chat", content: `Sorry: ${error.code}` };
      },
    );
    const run = await workflows.runToEnd(slug, {});
    expect(run.status).toBe("SUCCEEDED");
    expect(run.output).toEqual({ text: "Sorry: NOT_FOUND" });
    const call = run.steps.find((step) => step.parentId !== null)!;
    expect(call.status).toBe("FAILED");
    expect(call.error).toMatchObject({ code: "NOT_FOUND" });
  });

  it("fails the step with a clear error when the model never stops", async () => {
    const slug = unique("agent-loop");
    await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: answer
    uses: agent
    with: { prompt: "go", tools: [transform], maxIterations: 2 }
    retry: { attempts: 1 }
`);
    fake.setFallback(() => ({ kind: "chat", toolCalls: [{ name: "transform", arguments: { again: true } }] }));
    const run = await workflows.runToEnd(slug, {});
    expect(run.status).toBe("FAILED");
    expect((run.error as { message: string }).message).toMatch(/maxIterations \(2 model calls, 2 tool calls\)/);
    expect(run.steps.filter((step) => step.parentId !== null)).toHaveLength(2);
  });

  it("refuses a tool that is not a step type", async () => {
    const slug = unique("agent-bad-tool");
    await workflows.publish(`
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: answer
    uses: agent
    with: { prompt: "go", tools: [no.such.step] }
`);
    const run = await workflows.runToEnd(slug, {});
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "BAD_USER_INPUT" });
    expect((run.error as { message: string }).message).toMatch(/no\.such\.step/);
  });
});

describe("workflows/examples/cross-modal-qa.yaml", () => {
  const source = () => fs.readFile(new URL("../../workflows/examples/cross-modal-qa.yaml", import.meta.url), "utf8");

  it("publishes", async () => {
    await workflows.publish(await source());
  });

  it("answers from the hits of a real search", async (context) => {
    if (!findStepType("search")) context.skip("no `search` step type is registered in this build");
    const { asset } = await ingestContent(t.app, projectId, {
      bytes: Buffer.from("The lighthouse on the north cape was painted red and white in 1921."),
      modality: "TEXT",
      mimeType: "text/plain",
      source: "text",
    });
    const indexed = await eventually(async () => {
      const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
      return ["READY", "FAILED"].includes(row.status) ? row : null;
    }, 60_000);
    expect(indexed.error).toBeNull();
    await workflows.publish(await source());
    fake.enqueue(
      (request) => {
        // The model was told the search step's input by its JSON Schema.
        const search = request.body.tools.find((tool: any) => tool.function.name === "search").function.parameters;
        expect(search.properties.text).toMatchObject({ type: "string" });
        return { kind: "chat", toolCalls: [{ name: "search", arguments: { text: "lighthouse colours" } }] };
      },
      (request) => {
        const result = JSON.parse(request.body.messages.at(-1).content);
        const hits = JSON.stringify(result.output ?? result);
        const found = hits.includes(asset.id);
        return {
          kind: "chat",
          toolCalls: [{ name: "final_answer", arguments: { answer: found ? "Red and white." : "Not found.", assetIds: found ? [asset.id] : [] } }],
        };
      },
    );
    const run = await workflows.runToEnd("cross-modal-qa", { question: "What colours is the lighthouse?" });
    expect(run.error).toBeNull();
    expect(run.output).toEqual({ answer: "Red and white.", assetIds: [asset.id] });
  }, 120_000);
});
