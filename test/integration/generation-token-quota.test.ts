import { afterAll, beforeAll, expect, it } from "vitest";
import type { FakeOpenAIServer } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { eventually, type TestApp } from "../support/test-app.ts";

let t: TestApp;
let fake: FakeOpenAIServer;
let harness: FakeProviderApp;

beforeAll(async () => {
  harness = await startFakeProviderApp({
    models: { "llm.default": { provider: "fake", model: "tiny-chat", retries: 0, timeoutMs: 10000 } },
    apiKey: "sk-token-quota-test",
    app: { worker: true, env: { QUOTA_GENERATION_TOKENS: "40", QUOTA_GENERATION_PERIOD_SECONDS: "3600" } },
  });
  ({ t, fake } = harness);
});

afterAll(() => harness?.close());

const GENERATE = `mutation ($input: GenerateInput!) { generate(input: $input) { id } }`;
const JOB = `query ($id: ID!) { job(id: $id) { status usage } }`;

async function generateOnce(key: string) {
  fake.enqueue({ kind: "chat", content: "A short answer.", usage: { prompt_tokens: 21, completion_tokens: 8 } });
  const started = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "Say something." } }, key);
  expect(started.errors).toBeUndefined();
  return eventually(async () => {
    const job = (await t.graphql(JOB, { id: started.data.generate.id }, key)).data?.job;
    return job && ["SUCCEEDED", "FAILED"].includes(job.status) ? job : null;
  }, 30_000);
}

it("refuses a generate with QUOTA_EXCEEDED once the period's token budget is spent, and creates no job; other projects go on", async () => {
  const spender = await t.createProject();
  // 29 tokens, then 58: the budget of 40 is spent by the second generation.
  expect((await generateOnce(spender.key)).status).toBe("SUCCEEDED");
  expect((await generateOnce(spender.key)).usage.totalTokens).toBe(29);

  const jobsBefore = await t.app.db.job.count({ where: { projectId: spender.projectId } });
  const refused = await t.graphql(GENERATE, { input: { task: "TEXT", prompt: "One more?" } }, spender.key);
  expect(refused.errors?.[0]?.extensions?.code).toBe("QUOTA_EXCEEDED");
  const details = refused.errors?.[0]?.extensions?.details as Record<string, number>;
  expect(details).toMatchObject({ quota: "QUOTA_GENERATION_TOKENS", limit: 40, used: 58 });
  expect(details.retryAfterSeconds).toBeGreaterThan(3500);
  expect(details.retryAfterSeconds).toBeLessThanOrEqual(3600);
  expect(await t.app.db.job.count({ where: { projectId: spender.projectId } })).toBe(jobsBefore);

  const other = await t.createProject();
  expect((await generateOnce(other.key)).status).toBe("SUCCEEDED");
});
