import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withExactWavSizes } from "../../services/generation/wav-file.ts";
import { wavWithLyingHeader } from "../support/media-fixtures.ts";
import { searchStep } from "../../workflows/steps/search-step.ts";
import type { StepContext } from "../../workflows/steps/step-type.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Spoken words on a fresh install (issue #21): no Whisper export, no
 * transcription alias, the embedded vector store. The built-in offline
 * transcriber (pocketsphinx) transcribes with word times, ingest keeps the
 * phones it heard, and `search` finds an espeak-ng WAV by its words and says
 * where in a video its speech and its on-screen text are.
 */

const run = promisify(execFile);
const INGEST = /* GraphQL */ `mutation Ingest($input: IngestInput!) { ingest(input: $input) { asset { id modality } job { id } } }`;
const SEARCH = /* GraphQL */ `
  query Search($input: SearchInput!) { search(input: $input) { hits { score spaces snippet asset { id modality } segments { start end text score } } } }
`;
const GENERATE = /* GraphQL */ `mutation ($input: GenerateInput!) { generate(input: $input) { id } }`;
const JOB = /* GraphQL */ `query ($id: ID!) { job(id: $id) { id status output error { code message } } }`;

let t: TestApp;
let project: { key: string; projectId: string };
let folder: string;

async function speak(text: string): Promise<Buffer> {
  const { stdout } = await run("espeak-ng", ["--stdout", "-v", "en-us", text], { encoding: "buffer" });
  // espeak-ng streams its WAV with unknown sizes in the header; fix them as the speech provider does.
  return withExactWavSizes(stdout);
}

async function upload(bytes: Buffer, name: string, type: string) {
  const form = new FormData();
  form.set("operations", JSON.stringify({ query: INGEST, variables: { input: { file: null } } }));
  form.set("map", JSON.stringify({ 0: ["variables.input.file"] }));
  form.set("0", new Blob([new Uint8Array(bytes)], { type }), name);
  const response = await fetch(t.url, { method: "POST", body: form, headers: { authorization: `Bearer ${project.key}`, "graphql-require-preflight": "1" } });
  const result = (await response.json()) as any;
  expect(result.errors).toBeUndefined();
  const { asset, job } = result.data.ingest;
  const finished = await eventually(async () => {
    const row = await t.app.db.job.findUnique({ where: { id: job.id } });
    return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
  }, 120_000);
  return { asset: asset as { id: string; modality: string }, job: finished };
}

async function ingestReady(bytes: Buffer, name: string, type: string) {
  const { asset, job } = await upload(bytes, name, type);
  expect(job.error).toBeNull();
  expect(job.status).toBe("SUCCEEDED");
  return asset;
}

/** 8 s: silence, then the sentence spoken from second 3; a white frame, then "LIGHTHOUSE" on screen from second 5. */
async function makeVideo(sentence: string): Promise<Buffer> {
  const speech = path.join(folder, "speech.wav");
  await fs.writeFile(speech, await speak(sentence));
  const sign = path.join(folder, "sign.png");
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="160"><rect width="100%" height="100%" fill="white"/><text x="20" y="100" font-family="DejaVu Sans, sans-serif" font-size="56" fill="black">LIGHTHOUSE</text></svg>`;
  await fs.writeFile(sign, await sharp(Buffer.from(svg)).png().toBuffer());
  const video = path.join(folder, "talk.mp4");
  await run("ffmpeg", [
    "-v", "error", "-y",
    "-f", "lavfi", "-i", "color=c=white:s=480x160:r=10:d=8",
    "-loop", "1", "-i", sign,
    "-i", speech,
    "-filter_complex", "[0:v][1:v]overlay=enable='gte(t,5)':shortest=1[v];[2:a]adelay=3000:all=1,apad[a]",
    "-map", "[v]", "-map", "[a]", "-t", "8",
    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", video,
  ]);
  return fs.readFile(video);
}

beforeAll(async () => {
  folder = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-spoken-"));
  // A fresh install: no PROVIDERS_FILE, no transcription alias, the embedded vector store.
  t = await startTestApp({ worker: true, env: { PROVIDERS_FILE: "", WEAVIATE_URL: "" } });
  project = await t.createProject();
});

afterAll(async () => {
  await t.app.vectorStore.deleteProject(project.projectId);
  await t.close();
  await fs.rm(folder, { recursive: true, force: true });
});

describe("spoken words on a fresh install", () => {
  let meeting: { id: string };

  it("search finds an espeak-ng WAV by its words, and says where they are", async () => {
    await ingestReady(Buffer.from("Please remember to water the tomato plants on the balcony."), "note.txt", "text/plain");
    await ingestReady(await speak("please remember to water the tomato plants"), "plants.wav", "audio/wav");
    meeting = await ingestReady(await speak("quarterly budget meeting"), "meeting.wav", "audio/wav");

    const result = await t.graphql(SEARCH, { input: { text: "quarterly budget meeting" } }, project.key);
    expect(result.errors).toBeUndefined();
    const [first] = result.data.search.hits;
    expect(first.asset).toEqual({ id: meeting.id, modality: "AUDIO" });
    expect(first.spaces).toContain("spoken-phones");
    expect(first.segments.length).toBeGreaterThan(0);
    // The clip is about 1.5 s of speech: the match lies inside it.
    expect(first.segments[0].start).toBeGreaterThanOrEqual(0);
    expect(first.segments[0].end).toBeLessThanOrEqual(2.5);
  }, 240_000);

  it("MCP's search tool and a workflow's search step find it by its words too (one search path)", async () => {
    const client = new Client({ name: "tessera-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(t.url.replace(/\/graphql$/, "/mcp")), { requestInit: { headers: { authorization: `Bearer ${project.key}` } } }));
    try {
      const found = (await client.callTool({ name: "search", arguments: { text: "quarterly budget meeting" } })) as any;
      expect(found.isError).toBeFalsy();
      const [first] = found.structuredContent.hits;
      expect(first.assetId).toBe(meeting.id);
      expect(first.segments.length).toBeGreaterThan(0);
    } finally {
      await client.close();
    }

    const context = { app: t.app, projectId: project.projectId } as StepContext;
    const output = searchStep.output.parse(await searchStep.run(searchStep.with.parse({ text: "quarterly budget meeting" }), context));
    const [first] = output.hits;
    expect(first!.assetId).toBe(meeting.id);
    expect(first!.spaces).toContain("spoken-phones");
    expect(first!.segments[0]!.end).toBeLessThanOrEqual(2.5);
  }, 120_000);

  it("generate TRANSCRIPT works with nothing configured (pocketsphinx)", async () => {
    const started = await t.graphql(GENERATE, { input: { task: "TRANSCRIPT", attachments: [meeting.id] } }, project.key);
    expect(started.errors).toBeUndefined();
    const job = await eventually(async () => {
      const response = await t.graphql(JOB, { id: started.data.generate.id }, project.key);
      const row = response.data?.job;
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 60_000);
    expect(job.error).toBeNull();
    expect(job.output).toMatchObject({ task: "TRANSCRIPT", model: "transcribe.offline" });
    expect(job.output.text.trim().length).toBeGreaterThan(0);
  }, 120_000);

  it("a video's spoken words and on-screen text are found at their seconds", async () => {
    const video = await ingestReady(await makeVideo("the quarterly budget meeting is on thursday"), "talk.mp4", "video/mp4");

    const byText = await t.graphql(SEARCH, { input: { text: "lighthouse", modalities: ["VIDEO"] } }, project.key);
    expect(byText.errors).toBeUndefined();
    const shown = byText.data.search.hits.find((hit: any) => hit.asset.id === video.id);
    expect(shown).toBeDefined();
    const sign = shown.segments.find((segment: any) => /lighthouse/i.test(segment.text));
    expect(sign).toBeDefined();
    expect(Math.abs(sign.start - 5)).toBeLessThanOrEqual(1);

    const bySpeech = await t.graphql(SEARCH, { input: { text: "quarterly budget meeting", modalities: ["VIDEO"] } }, project.key);
    expect(bySpeech.errors).toBeUndefined();
    const heard = bySpeech.data.search.hits.find((hit: any) => hit.asset.id === video.id);
    expect(heard).toBeDefined();
    expect(heard.spaces).toContain("spoken-phones");
    // "the quarterly ..." starts at second 3.
    expect(Math.abs(heard.segments[0].start - 3)).toBeLessThanOrEqual(1);
  }, 240_000);

  it("undecodable audio gets a typed error and changes nothing", async () => {
    const before = await t.app.db.asset.count({ where: { projectId: project.projectId } });
    const vectorsBefore = await t.app.vectorStore.count(project.projectId, {});
    const form = new FormData();
    form.set("operations", JSON.stringify({ query: INGEST, variables: { input: { file: null } } }));
    form.set("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.set("0", new Blob([new Uint8Array(await wavWithLyingHeader())], { type: "audio/wav" }), "broken.wav");
    const response = await fetch(t.url, { method: "POST", body: form, headers: { authorization: `Bearer ${project.key}`, "graphql-require-preflight": "1" } });
    const result = (await response.json()) as any;
    expect(result.errors?.[0]?.extensions?.code).toBe("CORRUPT_MEDIA");
    expect(await t.app.db.asset.count({ where: { projectId: project.projectId } })).toBe(before);
    expect(await t.app.vectorStore.count(project.projectId, {})).toBe(vectorsBefore);
  }, 120_000);
});
