import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingestContent } from "../../services/assets/ingest-service.ts";
import { closeModelRouter } from "../../services/generation/app-model-router.ts";
import { buildTinySmolVlm } from "../support/fixture-models/tiny-smolvlm/build-tiny-smolvlm.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
let scratch: string;
const previousProviders = process.env.PROVIDERS_FILE;

beforeAll(async () => {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-local-vlm-"));
  const modelsDir = path.join(scratch, "models");
  await buildTinySmolVlm(modelsDir);
  const providersFile = path.join(scratch, "providers.yaml");
  // As an operator would: MODEL_ALIAS_LLM_VISION=local:tiny-smolvlm, written in PROVIDERS_FILE here so it reaches the worker.
  await fs.writeFile(providersFile, ["models:", "  llm.vision: { provider: local, model: tiny-smolvlm }", "  vision.missing: { provider: local, model: no-such-vlm, retries: 0 }"].join("\n"));
  process.env.PROVIDERS_FILE = providersFile;
  t = await startTestApp({ worker: true, env: { MODELS_DIR: modelsDir } });
});

afterAll(async () => {
  if (t) await closeModelRouter(t.app);
  await t?.close();
  if (previousProviders === undefined) delete process.env.PROVIDERS_FILE;
  else process.env.PROVIDERS_FILE = previousProviders;
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
});

const GENERATE = `mutation ($input: GenerateInput!) { generate(input: $input) { id } }`;
const JOB = `query ($id: ID!) { job(id: $id) { status output usage error { code message } } }`;
const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

async function imageAsset(projectId: string, background: string) {
  const png = await sharp({ create: { width: 24, height: 16, channels: 3, background } }).png().toBuffer();
  return (await ingestContent(t.app, projectId, { bytes: png, modality: "IMAGE", mimeType: "image/png", source: "upload", filename: "colour.png" })).asset;
}

async function generated(key: string, input: Record<string, unknown>) {
  const started = await t.graphql(GENERATE, { input }, key);
  expect(started.errors).toBeUndefined();
  return eventually(async () => {
    const job = (await t.graphql(JOB, { id: started.data.generate.id }, key)).data?.job;
    return job && ["SUCCEEDED", "FAILED"].includes(job.status) ? job : null;
  }, 60_000);
}

async function runWorkflow(key: string, slug: string, input: unknown) {
  const started = await t.graphql(`mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`, { slug, input }, key);
  expect(started.errors).toBeUndefined();
  return eventually(async () => {
    const run = await t.app.db.run.findUniqueOrThrow({ where: { id: started.data.runWorkflow.id } });
    return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(run.status) ? run : null;
  }, 60_000);
}

describe("generate with image attachments on a local vision-language export", () => {
  it("answers a TEXT request about a project's image through llm.vision; another image, another answer", async () => {
    const { key, projectId } = await t.createProject();
    const red = await generated(key, { task: "TEXT", prompt: "What colour is this?", attachments: [(await imageAsset(projectId, "#d00")).id], maxTokens: 30 });
    const blue = await generated(key, { task: "TEXT", prompt: "What colour is this?", attachments: [(await imageAsset(projectId, "#00c")).id], maxTokens: 30 });
    expect(red.error).toBeNull();
    expect(red.output).toMatchObject({ task: "TEXT", model: "llm.vision", finishReason: "stop" });
    // The fixture: the image's dominant channel picks the first letter.
    expect(red.output.text).toMatch(/^r[s-z]+$/);
    expect(blue.output.text).toMatch(/^b[c-z]+$/);
    expect(red.usage).toMatchObject({ completionTokens: red.output.text.length + 1 });
  });

  it("captions with the local model, and a missing export fails the job as MODEL_NOT_FOUND saying where it belongs", async () => {
    const { key, projectId } = await t.createProject();
    const asset = await imageAsset(projectId, "#0b0");
    const caption = await generated(key, { task: "CAPTION", attachments: [asset.id], model: "llm.vision" });
    expect(caption.output).toMatchObject({ task: "CAPTION", model: "llm.vision" });
    expect(caption.output.text).toMatch(/^g/);
    const missing = await generated(key, { task: "CAPTION", attachments: [asset.id], model: "vision.missing" });
    expect(missing.status).toBe("FAILED");
    expect(missing.error.code).toBe("MODEL_NOT_FOUND");
    expect(missing.error.message).toMatch(/no-such-vlm.*MODELS_DIR/);
  });
});

describe("generate.vqa step", () => {
  it("answers a question about an image asset, and refuses a text asset with BAD_USER_INPUT", async () => {
    const { key, projectId } = await t.createProject();
    const slug = unique("ask-image");
    const published = await t.graphql(
      `mutation ($d: String!) { publishWorkflow(definition: $d) { number warnings } }`,
      {
        d: `
apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  image: { type: asset }
steps:
  - id: ask
    uses: generate.vqa
    with: { asset: "\${{ inputs.image }}", question: "Which colour dominates?" }
outputs:
  answer: "\${{ steps.ask.output.text }}"
  model: "\${{ steps.ask.output.model }}"
`,
      },
      key,
    );
    expect(published.errors).toBeUndefined();
    expect(published.data.publishWorkflow.warnings).toEqual([]); // llm.vision is configured

    const run = await runWorkflow(key, slug, { image: (await imageAsset(projectId, "#00c")).id });
    expect(run.error).toBeNull();
    expect(run.output).toMatchObject({ model: "llm.vision" });
    expect((run.output as { answer: string }).answer).toMatch(/^b[c-z]+$/);

    const text = await ingestContent(t.app, projectId, { bytes: Buffer.from("not a picture"), modality: "TEXT", mimeType: "text/plain", source: "upload" });
    const refused = await runWorkflow(key, slug, { image: text.asset.id });
    expect(refused.status).toBe("FAILED");
    expect(refused.error).toMatchObject({ code: "BAD_USER_INPUT" });
  });
});
