import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeJpeg } from "../support/media-fixtures.ts";
import { uploadFile } from "../support/graphql-upload.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * workflows/examples on a fresh install: no provider and no model alias set, only what ships. Two examples run end
 * to end there; each of the others says what it needs in its header, and publishing it warns.
 */
const folder = path.resolve(import.meta.dirname, "..", "..", "workflows", "examples");
const OFFLINE = ["read-aloud", "similar-media"];
let t: TestApp;
let key: string;

beforeAll(async () => {
  for (const name of Object.keys(process.env)) if (/^(MODEL_ALIAS_|OPENAI_|PROVIDER_)|^PROVIDERS_FILE$/.test(name)) delete process.env[name];
  t = await startTestApp({ worker: true });
  ({ key } = await t.createProject());
}, 60_000);
afterAll(async () => {
  await t?.close();
});

async function publish(slug: string): Promise<string[]> {
  const source = await fs.readFile(path.join(folder, `${slug}.yaml`), "utf8");
  const answer = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { warnings } }`, { d: source }, key);
  expect(answer.errors).toBeUndefined();
  return answer.data.publishWorkflow.warnings;
}

async function runToEnd(slug: string, input: unknown) {
  const started = await t.graphql(`mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`, { slug, input }, key);
  expect(started.errors).toBeUndefined();
  const runId = started.data.runWorkflow.id as string;
  return eventually(async () => {
    const run = await t.app.db.run.findUniqueOrThrow({ where: { id: runId }, include: { steps: true } });
    return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(run.status) ? run : null;
  }, 120_000);
}

async function ready(assetId: string) {
  await eventually(async () => (await t.app.db.asset.findUnique({ where: { id: assetId } }))?.status === "READY", 120_000);
}

describe("workflows/examples on a fresh install", () => {
  it("read-aloud speaks a text into a new audio asset and finds its speech", async () => {
    expect(await publish("read-aloud")).toEqual([]);
    const run = await runToEnd("read-aloud", { text: "The lighthouse keeper climbs the stairs every evening at nine." });
    expect(run.steps.map((step) => [step.stepId, step.status, step.error])).toEqual(expect.arrayContaining([["speak", "SUCCEEDED", null], ["speech", "SUCCEEDED", null]]));
    expect(run.status).toBe("SUCCEEDED");
    const output = run.output as { assetId: string; durationSec: number; speech: Array<{ start: number; end: number }> | { start: number; end: number } };
    const asset = await t.app.db.asset.findUniqueOrThrow({ where: { id: output.assetId } });
    expect(asset.modality).toBe("AUDIO");
    expect(output.durationSec).toBeGreaterThan(1);
    const speech = [output.speech].flat();
    expect(speech.length).toBeGreaterThan(0);
    expect(speech[0]!.end).toBeGreaterThan(speech[0]!.start);
  }, 180_000);

  it("similar-media lists the project's other assets closest to an image, grouped by modality", async () => {
    const note = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } } }`, { text: "A small grey test card with nothing on it." }, key);
    expect(note.errors).toBeUndefined();
    const upload = await uploadFile(t.url, key, { bytes: await makeJpeg(96, 64), filename: "card.jpg", mimeType: "image/jpeg" });
    const imageId = upload.data.ingest.asset.id as string;
    const noteId = note.data.ingest.asset.id as string;
    await ready(noteId);
    await ready(imageId);

    expect(await publish("similar-media")).toEqual([]);
    const run = await runToEnd("similar-media", { asset: imageId, limit: 5 });
    expect(run.steps.map((step) => [step.stepId, step.error])).toEqual(expect.arrayContaining([["similar", null], ["shape", null]]));
    expect(run.status).toBe("SUCCEEDED");
    const output = run.output as { matches: Array<{ assetId: string; modality: string; score: number }>; byModality: Record<string, string[]> };
    // Cross-modal: the image finds the text, and never itself.
    expect(output.matches.map((match) => match.assetId)).toContain(noteId);
    expect(output.matches.map((match) => match.assetId)).not.toContain(imageId);
    expect([output.byModality.TEXT].flat()).toContain(noteId);
  }, 240_000);

  it("every other example names what it needs, and publishing it warns while that is missing", async () => {
    const files = (await fs.readdir(folder)).filter((file) => file.endsWith(".yaml")).map((file) => file.replace(/\.yaml$/, ""));
    const others = files.filter((slug) => !OFFLINE.includes(slug));
    expect(others.length).toBeGreaterThan(0);
    for (const slug of others) {
      const header = (await fs.readFile(path.join(folder, `${slug}.yaml`), "utf8")).split("\n").filter((line) => line.startsWith("#")).join("\n");
      expect(header, slug).toMatch(/# Needs: /);
      const warnings = await publish(slug);
      expect(warnings.length, slug).toBeGreaterThan(0);
      expect(warnings.join("\n"), slug).toMatch(/MODEL_ALIAS_/);
    }
  }, 120_000);
});
