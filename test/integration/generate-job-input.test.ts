import { afterAll, beforeAll, expect, it } from "vitest";
import { BUDGET_RECHECK_AFTER_MS } from "../../services/generation/generate-request.ts";
import { chargeTokens } from "../../services/limits/token-budget.ts";
import type { JobPayload } from "../../services/queue/job-payloads.ts";
import { generateHandler } from "../../services/worker/handlers/generate-handler.ts";
import type { JobHandlerContext } from "../../services/worker/job-handler.ts";
import type { FakeOpenAIServer } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { statementsOf } from "../support/pg-statements.ts";
import type { TestApp } from "../support/test-app.ts";

// Issue #20: a generate job's worker takes its request from the payload the mutation enqueued instead of reading its
// row, and does not check the token budget again when the mutation checked it within BUDGET_RECHECK_AFTER_MS.
let t: TestApp;
let fake: FakeOpenAIServer;
let harness: FakeProviderApp;

beforeAll(async () => {
  harness = await startFakeProviderApp({
    models: { "llm.default": { provider: "fake", model: "tiny-chat", retries: 0 } },
    // No worker: each test runs the handler itself on the payload the mutation queued.
    app: { env: { QUOTA_GENERATION_TOKENS: "40", QUOTA_GENERATION_PERIOD_SECONDS: "3600" } },
  });
  ({ t, fake } = harness);
});

afterAll(() => harness?.close());


const GENERATE = `mutation ($input: GenerateInput!) { generate(input: $input) { id } }`;

async function queuedJob(key: string, prompt: string) {
  const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt, maxTokens: 50 } }, key);
  expect(started.errors).toBeUndefined();
  const job = await t.app.queues.queue("generate").getJob(started.data.generate.id);
  return job!.data as JobPayload<"generate">;
}

function context(tokens: string[]): JobHandlerContext {
  return { app: t.app, logger: t.app.logger, attempt: 1, tracker: { token: (token: string) => tokens.push(token) } as never };
}

/** SQL statements any node-postgres client of this process sends while `work` runs. */
async function statementsDuring<T>(work: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
  let result: T | undefined;
  const sent = await statementsOf(async () => (result = await work()));
  return { result: result as T, statements: sent.map((statement) => statement.text ?? "") };
}

it("queues the checked request with the job, and the worker runs it without reading the job's row", async () => {
  const { key, projectId } = await t.createProject();
  const payload = await queuedJob(key, "  Carried prompt.  ");
  expect(payload.request).toMatchObject({ task: "TEXT", prompt: "  Carried prompt.  ", maxTokens: 50, attachments: [] });
  expect(payload.checkedAt).toBeGreaterThan(Date.now() - 60_000);
  const stored = await t.app.db.job.findUniqueOrThrow({ where: { id: payload.jobId } });
  expect(payload.request).toEqual(stored.input);
  expect(payload.projectId).toBe(projectId);

  fake.enqueue({ kind: "chat", content: "From the payload.", usage: { prompt_tokens: 5, completion_tokens: 4 } });
  const tokens: string[] = [];
  const { result, statements } = await statementsDuring(() => generateHandler.run(payload, context(tokens)));
  expect(result).toMatchObject({ output: { task: "TEXT", text: "From the payload." } });
  expect(tokens.join("")).toBe("From the payload.");
  expect(fake.requests.at(-1)?.body.messages.at(-1).content).toBe("Carried prompt.");
  expect(statements.filter((text) => /"Job"/.test(text))).toEqual([]);
});

it("reads the row's input for a job queued without it (re-enqueued by the reconciler)", async () => {
  const { key } = await t.createProject();
  const { jobId, projectId } = await queuedJob(key, "Stored prompt.");
  fake.enqueue({ kind: "chat", content: "From the row.", usage: { prompt_tokens: 5, completion_tokens: 4 } });
  const { result, statements } = await statementsDuring(() => generateHandler.run({ jobId, projectId }, context([])));
  expect(result).toMatchObject({ output: { task: "TEXT", text: "From the row." } });
  expect(fake.requests.at(-1)?.body.messages.at(-1).content).toBe("Stored prompt.");
  expect(statements.filter((text) => /FROM "Job"/.test(text))).toHaveLength(1);
});

it("runs a job its mutation checked moments ago though the budget was spent since; refuses one checked longer ago", async () => {
  const { key, projectId } = await t.createProject();
  const fresh = await queuedJob(key, "Admitted just now.");
  const stale = await queuedJob(key, "Admitted long ago.");
  await chargeTokens(t.app, projectId, 100); // other jobs of the project spent the budget meanwhile

  fake.enqueue({ kind: "chat", content: "Still runs.", usage: { prompt_tokens: 5, completion_tokens: 2 } });
  const ran = await generateHandler.run({ ...fresh, checkedAt: Date.now() - BUDGET_RECHECK_AFTER_MS / 2 }, context([]));
  expect(ran).toMatchObject({ output: { text: "Still runs." } });

  const requestsBefore = fake.requests.length;
  await expect(generateHandler.run({ ...stale, checkedAt: Date.now() - BUDGET_RECHECK_AFTER_MS - 100 }, context([]))).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
  // A clock ahead of this one (another host's) does not count as recent either; nor does a payload without a time.
  await expect(generateHandler.run({ ...stale, checkedAt: Date.now() + 5_000 }, context([]))).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
  await expect(generateHandler.run({ jobId: stale.jobId, projectId }, context([]))).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
  expect(fake.requests.length).toBe(requestsBefore);
});

it("inserts the mutation's job row with a named statement, which node-postgres prepares once per connection", async () => {
  const { key } = await t.createProject();
  const sent = (
    await statementsOf(async () => {
      await queuedJob(key, "First.");
      await queuedJob(key, "Second.");
    })
  ).filter((statement) => /INSERT INTO "Job"/.test(statement.text ?? ""));
  expect(sent).toHaveLength(2);
  expect(sent.map((statement) => statement.name)).toEqual(["generate-job-insert-under-quota", "generate-job-insert-under-quota"]);
});
