/**
 * The CLI's commands built on the SDK (issue 19): assets list|get|download|delete,
 * jobs list|get|cancel, generate, workflow resume, and `workflow run --follow`
 * saying how to resume a waiting run. The real CLI (bin/tessera.js) against a
 * real gateway and worker; generation through a fake OpenAI-compatible server.
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../services/core/api-keys.ts";
import type { FakeOpenAIServer } from "../support/fake-openai-server.ts";
import { startFakeProviderApp, type FakeProviderApp } from "../support/fake-provider-app.ts";
import { eventually, type TestApp } from "../support/test-app.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
let t: TestApp;
let fake: FakeOpenAIServer;
let scratch: string;
let key: string;
let harness: FakeProviderApp;
const projectName = `cli-sdk-${Date.now()}`;

beforeAll(async () => {
  harness = await startFakeProviderApp({
    models: { "llm.default": { provider: "fake", model: "tiny-chat", retries: 0, timeoutMs: 10000 } },
    apiKey: "sk-cli-sdk",
    app: { worker: true },
  });
  ({ t, fake, scratch } = harness);
  ({ key } = await t.createProject(projectName));
}, 120_000);

afterAll(() => harness?.close());


/** Runs the CLI; resolves with its exit code and output instead of throwing on a non-zero exit. */
async function tessera(args: string[], options: { cwd?: string } = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)("node", [path.join(root, "bin/tessera.js"), ...args], {
      cwd: options.cwd ?? root,
      env: { ...process.env, TESSERA_URL: t.url, TESSERA_API_KEY: key },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

async function ingestText(text: string, filename: string) {
  const file = path.join(scratch, filename);
  await fs.writeFile(file, text);
  const ingested = await tessera(["ingest", file, "--wait", "--json"]);
  expect(ingested.code, ingested.stderr).toBe(0);
  return JSON.parse(ingested.stdout.trim()) as { asset: { id: string }; job: { id: string } };
}

describe("tessera assets", () => {
  it("lists, shows, downloads and deletes assets", async () => {
    const text = "the quick brown fox reads the SDK's documentation\n";
    const { asset } = await ingestText(text, "fox.txt");

    const listed = await tessera(["assets", "list", "--status", "ready", "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = listed.stdout.trim().split("\n").map((line) => JSON.parse(line));
    expect(rows.map((row) => row.id)).toContain(asset.id);
    expect(listed.stderr).toMatch(/^\d+ of \d+ assets$/m);

    const shown = await tessera(["assets", "get", asset.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: asset.id, modality: "TEXT", status: "READY", filename: "fox.txt" });

    const downloads = await fs.mkdtemp(path.join(scratch, "downloads-"));
    const downloaded = await tessera(["assets", "download", asset.id], { cwd: downloads });
    expect(downloaded.code, downloaded.stderr).toBe(0);
    expect(await fs.readFile(path.join(downloads, "fox.txt"), "utf8")).toBe(text);
    const named = await tessera(["assets", "download", asset.id, "-o", path.join(downloads, "copy.txt")]);
    expect(named.code, named.stderr).toBe(0);
    expect(await fs.readFile(path.join(downloads, "copy.txt"), "utf8")).toBe(text);

    const deleted = await tessera(["assets", "delete", asset.id, "not-an-asset"]);
    expect(deleted.code).toBe(1);
    expect(deleted.stdout).toContain(`${asset.id} deleted`);
    expect(deleted.stderr).toMatch(/not-an-asset not deleted: NOT_FOUND/);
    const gone = await tessera(["assets", "get", asset.id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/NOT_FOUND/);
  }, 400_000);
});

describe("tessera jobs", () => {
  it("lists and shows jobs, and cancelling a finished one is a CONFLICT", async () => {
    const { job } = await ingestText("a job to list\n", "job.txt");
    const listed = await tessera(["jobs", "list", "--kind", "ingest"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${job.id}\\tINGEST\\tSUCCEEDED\\t100%`, "m"));

    const shown = await tessera(["jobs", "get", job.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: job.id, kind: "INGEST", status: "SUCCEEDED" });

    const cancelled = await tessera(["jobs", "cancel", job.id]);
    expect(cancelled.code).toBe(1);
    expect(cancelled.stderr).toMatch(/CONFLICT/);
  }, 400_000);
});

describe("tessera generate", () => {
  it("streams the answer's tokens to stdout and waits for the job", async () => {
    fake.enqueue({ kind: "chat", content: "Tessera answers from the command line.", usage: { prompt_tokens: 5, completion_tokens: 6 } });
    const generated = await tessera(["generate", "What is Tessera?", "--system", "Be brief."]);
    expect(generated.code, generated.stderr).toBe(0);
    expect(generated.stdout.trim()).toBe("Tessera answers from the command line.");
    const jobId = /^job (\S+)$/m.exec(generated.stderr)?.[1];
    expect(jobId).toBeTruthy();
    const shown = await tessera(["jobs", "get", jobId!]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ kind: "GENERATE", status: "SUCCEEDED" });

    fake.enqueue({ kind: "chat", content: "later" });
    const queued = await tessera(["generate", "Later?", "--no-wait"]);
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.stdout.trim()).toMatch(/^\S+$/);
  }, 400_000);
});

describe("tessera workflow resume", () => {
  it("run --follow stops at a wait step saying how to resume; resume --follow goes on to the output", async () => {
    const file = path.join(scratch, "approve.yaml");
    await fs.writeFile(
      file,
      `apiVersion: tessera/v1
kind: Workflow
slug: cli-approve
steps:
  - id: approve
    uses: wait
    with: { prompt: "ok?" }
  - id: done
    uses: transform
    needs: [approve]
    with: { answer: "\${{ steps.approve.output.answer }}" }
outputs:
  answer: "\${{ steps.done.output.answer }}"
`,
    );
    const published = await tessera(["workflow", "publish", file]);
    expect(published.code, published.stderr).toBe(0);

    const followed = await tessera(["workflow", "run", "cli-approve", "--follow"]);
    expect(followed.code, followed.stderr).toBe(0);
    const runId = /^run (\S+)$/m.exec(followed.stderr)?.[1];
    expect(runId).toBeTruthy();
    expect(followed.stderr).toContain(`tessera workflow resume ${runId} --step approve --input key=value --follow`);
    const waiting = await t.graphql(`query ($id: ID!) { run(id: $id) { status } }`, { id: runId }, key);
    expect(waiting.data.run.status).toBe("WAITING");

    const resumed = await tessera(["workflow", "resume", runId!, "--step", "approve", "--input", "answer=yes", "--follow"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toEqual({ answer: "yes" });

    // Without --step: the run's one waiting step.
    const again = await tessera(["workflow", "run", "cli-approve"]);
    const secondId = again.stdout.trim();
    await eventually(async () => {
      const answer = await t.graphql(`query ($id: ID!) { run(id: $id) { status } }`, { id: secondId }, key);
      return answer.data?.run.status === "WAITING";
    }, 60_000);
    const plain = await tessera(["workflow", "resume", secondId, "--input", "answer=no"]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`^run ${secondId} (RUNNING|QUEUED|SUCCEEDED)`, "m"));
  }, 500_000);
});

describe("tessera keys list|revoke", () => {
  it("lists the project's keys, marking the one in use, and revokes another, which then stops working", async () => {
    const { key: other, apiKey } = await createApiKey(t.app.db, projectName, "ci-robot");
    const listed = await tessera(["keys", "list"]);
    expect(listed.code, listed.stderr).toBe(0);
    const lines = listed.stdout.trim().split("\n");
    expect(lines.some((line) => line.startsWith(`*`))).toBe(true);
    expect(lines.find((line) => line.includes(apiKey.id))).toMatch(/ci-robot/);

    const revoked = await tessera(["keys", "revoke", apiKey.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^${apiKey.id} .*revoked at`, "m"));
    const refused = await t.graphql(`{ keys(first: 1) { totalCount } }`, {}, other);
    expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    const again = await tessera(["keys", "revoke", apiKey.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/CONFLICT/);
  }, 400_000);
});
