import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

it("`tessera keys create` prints a key that authenticates as that project, and stores only its hash", async () => {
  const project = `cli-${randomUUID()}`;
  const { stdout } = await promisify(execFile)("node", ["bin/tessera.js", "keys", "create", "--project", project], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL },
  });
  const key = stdout.trim();
  expect(key).toMatch(/^tsk_[\w-]{40,}$/);

  const response = await t.graphql(`{ assets { edges { node { id } } } }`, undefined, key);
  expect(response.errors).toBeUndefined();

  const stored = await t.app.db.apiKey.findMany({ where: { project: { name: project } } });
  expect(stored).toHaveLength(1);
  expect(JSON.stringify(stored)).not.toContain(key);
});
