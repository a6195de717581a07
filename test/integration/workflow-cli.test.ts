import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
let t: TestApp;
let scratch: string;

beforeAll(async () => {
  t = await startTestApp({ worker: true });
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-workflow-cli-"));
});
afterAll(async () => {
  await t?.close();
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
});

/** Runs the CLI; resolves with its exit code and output instead of throwing on a non-zero exit. */
async function tessera(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)("node", ["bin/tessera.js", ...args], { cwd: root, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const good = `apiVersion: tessera/v1
kind: Workflow
slug: cli-greet
inputs:
  name: { type: string }
  times: { type: integer }
steps:
  - id: greet
    uses: transform
    with: { text: "hello \${{ inputs.name }}", times: "\${{ inputs.times }}" }
outputs:
  text: "\${{ steps.greet.output.text }}"
  times: "\${{ steps.greet.output.times }}"
`;

const bad = `apiVersion: tessera/v1
kind: Workflow
slug: cli-bad
steps:
  - id: a
    uses: transform
    needs: [a]
  - id: b
    uses: nothing
    with: { v: "\${{ steps.ghost.output }}" }
`;

describe("tessera workflow validate", () => {
  it("works offline: prints every problem as file:line:col message and exits 1", async () => {
    await fs.writeFile(path.join(scratch, "good.yaml"), good);
    await fs.writeFile(path.join(scratch, "bad.yaml"), bad);
    // No server, no database, no Redis: validation needs none of them.
    const offline = { DATABASE_URL: "postgresql://nobody@127.0.0.1:1/none", REDIS_URL: "redis://127.0.0.1:1", TESSERA_URL: "http://127.0.0.1:1" };
    const result = await tessera(["workflow", "validate", path.join(scratch, "good.yaml"), path.join(scratch, "bad.yaml")], offline);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("good.yaml: ok (the models it needs are checked when it is published)");
    const lines = result.stderr.trim().split("\n");
    const badFile = path.join(scratch, "bad.yaml");
    expect(lines).toEqual([
      `${badFile}:7:13 step "a" needs itself`,
      expect.stringMatching(new RegExp(`^${badFile}:9:11 unknown step type "nothing"`)),
      `${badFile}:10:16 \${{ steps.ghost.output }} reads steps.ghost, which is not a step`,
    ]);
    const valid = await tessera(["workflow", "validate", path.join(scratch, "good.yaml")], offline);
    expect(valid.code).toBe(0);
  });
});

describe("tessera workflow publish and run", () => {
  it("publishes a file and follows a run to its output", async () => {
    const { key } = await t.createProject();
    const env = { TESSERA_URL: t.url, TESSERA_API_KEY: key };
    await fs.writeFile(path.join(scratch, "greet.yaml"), good);
    const published = await tessera(["workflow", "publish", path.join(scratch, "greet.yaml")], env);
    expect(published.stderr).toBe("");
    expect(published.stdout.trim()).toBe("cli-greet version 1");

    const run = await tessera(["workflow", "run", "cli-greet", "--input", "name=Ada", "--input", "times=3", "--follow"], env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ text: "hello Ada", times: 3 });
    expect(run.stderr).toContain("greet");

    const refused = await tessera(["workflow", "run", "cli-greet", "--input", "name=Ada", "--input", "times=lots"], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("BAD_USER_INPUT");
  });

  it("publishes a file whose model is not configured, and says what it needs", async () => {
    const { key } = await t.createProject();
    const needsModel = `apiVersion: tessera/v1\nkind: Workflow\nslug: cli-needs-llm\nsteps:\n  - id: answer\n    uses: generate.text\n    with: { prompt: "hello", model: llm.cli-missing }\n`;
    await fs.writeFile(path.join(scratch, "needs-llm.yaml"), needsModel);
    const published = await tessera(["workflow", "publish", path.join(scratch, "needs-llm.yaml")], { TESSERA_URL: t.url, TESSERA_API_KEY: key });
    expect(published.code).toBe(0);
    expect(published.stdout.trim()).toBe("cli-needs-llm version 1");
    expect(published.stderr).toMatch(/^warning: step "answer" \(generate\.text\) needs model alias "llm\.cli-missing".*MODEL_ALIAS_LLM_CLI_MISSING/m);
  });
});
