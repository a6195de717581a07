import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { IngestState } from "../../services/worker/ingest/ingest-stage.ts";
import { indexStage } from "../../services/worker/ingest/index-stage.ts";
import type { JobHandlerContext } from "../../services/worker/job-handler.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
let t: TestApp;
let project: { key: string; projectId: string };
const ids: Record<string, string> = {};
const texts = {
  garden: "Tomatoes and basil grow well together in a sunny garden bed.",
  engine: "The diesel engine needs new fuel injectors and an oil change.",
};

/** The CLI as a user runs it, against the test gateway. */
function tessera(args: string[], env: Record<string, string> = {}) {
  return promisify(execFile)("node", ["bin/tessera.js", ...args], {
    cwd: root,
    env: { ...process.env, TESSERA_URL: t.url.replace(/\/graphql$/, ""), TESSERA_API_KEY: project.key, ...env },
  });
}

beforeAll(async () => {
  t = await startTestApp({ env: { WEAVIATE_URL: TEST_WEAVIATE_URL, WEAVIATE_GRPC_PORT: String(TEST_WEAVIATE_GRPC_PORT) } });
  project = await t.createProject();
  for (const [name, text] of Object.entries(texts)) {
    const blob = await t.app.blobs.put(Buffer.from(text));
    const asset = await t.app.db.asset.create({
      data: { projectId: project.projectId, modality: "TEXT", sha256: blob.sha256, mimeType: "text/plain", byteSize: blob.byteSize, source: "text", status: "READY" },
    });
    // The sentence space only: whatever image-text model is also served (a demo or fixture CLIP) is not what this test is about.
    const sentence = (await t.app.models.embedText([text])).find((space) => space.space === "sentence");
    const state: IngestState = { derivedText: [], vectors: [{ space: sentence!.space, model: sentence!.model, vector: sentence!.vectors[0]!, chunk: 0, text }] };
    await indexStage.run(asset, state, { app: t.app } as JobHandlerContext);
    ids[name] = asset.id;
  }
}, 120_000);

afterAll(async () => {
  await t?.app.vectorStore.deleteProject(project.projectId);
  await t?.close();
});

it("`tessera search <text>` prints the hits, best first, with their snippets", async () => {
  const { stdout } = await tessera(["search", "vegetables in the backyard", "--limit", "2"]);
  const lines = stdout.trimEnd().split("\n");
  expect(lines[0]).toContain(ids.garden);
  expect(lines[0]).toMatch(/^ 1\. \d\.\d{4}  TEXT /);
  expect(lines[1]).toBe(`    ${JSON.stringify(texts.garden)}`);
  expect(stdout).toContain(ids.engine);
});

it("`tessera search --file <path>` uploads the file as the query", async () => {
  const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), "tessera-cli-")), "query.txt");
  await fs.writeFile(file, "car repair and motor oil");
  const { stdout } = await tessera(["search", "--file", file, "--json", "--limit", "1"]);
  const hits = JSON.parse(stdout);
  expect(hits.map((hit: any) => hit.asset.id)).toEqual([ids.engine]);
});

it("fails with the gateway's error code, and says what to set when no key is given", async () => {
  await expect(tessera(["search", "x", "--limit", "0"])).rejects.toMatchObject({ stderr: expect.stringContaining("BAD_USER_INPUT") });
  await expect(tessera(["search", "x"], { TESSERA_API_KEY: "" })).rejects.toMatchObject({ stderr: expect.stringContaining("TESSERA_API_KEY") });
  await expect(tessera(["search", "x", "--file", "y"])).rejects.toMatchObject({ stderr: expect.stringContaining("exactly one") });
});
