import { afterAll, beforeAll, expect, it } from "vitest";
import { REQUIRED_SCENARIOS, runConformance } from "../mcp-conformance/conformance.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * The official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, server mode) against /mcp on a
 * real gateway, with test/mcp-conformance/expected-failures.yml as its baseline (each entry with its reason).
 */

let t: TestApp;
let key: string;

beforeAll(async () => {
  t = await startTestApp();
  ({ key } = await t.createProject());
});

afterAll(async () => {
  await t?.close();
});

it("passes server-initialize, ping, logging-set-level, tools-list, resources-list and dns-rebinding-protection; fails only the expected", async () => {
  const { code, output } = await runConformance(t.url.replace(/\/graphql$/, "/mcp"), key);
  expect(output).toContain("Baseline check passed");
  for (const scenario of REQUIRED_SCENARIOS) expect(output, scenario).toMatch(new RegExp(`✓ ${scenario}: [1-9]\\d* passed, 0 failed`));
  expect(code, output.slice(-4000)).toBe(0);
}, 300_000);
