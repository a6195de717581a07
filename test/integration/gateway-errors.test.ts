import { createClient } from "graphql-ws";
import type { Plugin } from "graphql-yoga";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import type { GatewayContext } from "../../services/gateway/context.ts";
import { createGateway, type Gateway } from "../../services/gateway/gateway.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * TesseraErrors are plain errors; the gateway gives them their GraphQL shape
 * (code, details, path, locations) on every transport, and masks the rest.
 */

const NO_JOB = "00000000-0000-0000-0000-000000000000";
const SECRET = "password=hunter2";

/** Throws from a yoga plugin, as auth or limits would: a TesseraError, or a bug. */
function useThrowingPlugin(): Plugin<GatewayContext> {
  return {
    onExecute({ args }) {
      if (args.operationName === "Refused") throw new TesseraError(ErrorCode.CONFLICT, "refused by a plugin", { reason: "test" });
      if (args.operationName === "Broken") throw new Error(SECRET);
    },
  };
}

let t: TestApp;
let key: string;
let withPlugin: Gateway;
let pluginUrl: string;
beforeAll(async () => {
  t = await startTestApp();
  ({ key } = await t.createProject());
  withPlugin = createGateway(t.app, { plugins: [useThrowingPlugin()] });
  const address = await withPlugin.listen(0, "127.0.0.1");
  pluginUrl = `http://127.0.0.1:${address.port}/graphql`;
});
afterAll(async () => {
  await withPlugin?.close();
  await t?.close();
});

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, text: await response.text() };
}

describe("queries and mutations", () => {
  it("a resolver's TesseraError keeps its code, path and locations, with status 200", async () => {
    const { status, text } = await post(t.url, { query: `query ($id: ID!) {\n  job(id: $id) { id }\n}`, variables: { id: NO_JOB } });
    expect(status).toBe(200);
    expect(JSON.parse(text).errors).toEqual([
      { message: expect.any(String), path: ["job"], locations: [{ line: 2, column: 3 }], extensions: { code: "NOT_FOUND" } },
    ]);
  });

  it("a mutation's TesseraError keeps its details", async () => {
    const definition = "apiVersion: tessera/v1\nkind: Workflow\nslug: loop\nsteps:\n  - id: a\n    uses: transform\n    needs: [a]\n";
    const response = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`, { d: definition }, key);
    const error = response.errors?.[0];
    expect(error?.extensions?.code).toBe("INVALID_WORKFLOW");
    expect(error?.path).toEqual(["publishWorkflow"]);
    expect((error?.extensions?.details as { problems: unknown[] }).problems.length).toBeGreaterThan(0);
  });
});

describe("errors thrown in yoga plugins", () => {
  it("a TesseraError keeps its code and details", async () => {
    const { status, text } = await post(pluginUrl, { query: "query Refused { health { status } }", operationName: "Refused" });
    expect(status).toBe(200);
    expect(JSON.parse(text).errors).toEqual([{ message: "refused by a plugin", extensions: { code: "CONFLICT", details: { reason: "test" } } }]);
  });

  it("anything else is masked, without its message or a stack", async () => {
    const { text } = await post(pluginUrl, { query: "query Broken { health { status } }", operationName: "Broken" });
    expect(JSON.parse(text).errors[0].message).toBe("Unexpected error.");
    expect(text).not.toContain("hunter2");
    expect(text).not.toMatch(/at .*\.ts:\d+/);
  });
});

describe("subscriptions", () => {
  const subscription = `subscription ($id: ID!) { jobEvents(id: $id) { status } }`;

  it("over SSE: the code and path of a TesseraError", async () => {
    const { text } = await post(t.url, { query: subscription, variables: { id: NO_JOB } }, { accept: "text/event-stream" });
    const data = text.split("\n").find((line) => line.startsWith("data: {"));
    expect(JSON.parse(data!.slice(6)).errors).toEqual([
      { message: expect.any(String), path: ["jobEvents"], locations: [expect.any(Object)], extensions: { code: "NOT_FOUND" } },
    ]);
  });

  it("over graphql-ws: the code and path of a TesseraError, and no connection without a key", async () => {
    const iterate = async (connectionParams: Record<string, unknown>) => {
      // No retries: graphql-ws clients retry a 4403 close with backoff (about 30 s in all).
      const client = createClient({ url: t.url.replace("http", "ws"), webSocketImpl: WebSocket, connectionParams, retryAttempts: 0 });
      try {
        const results = [];
        for await (const result of client.iterate({ query: subscription, variables: { id: NO_JOB } })) results.push(result);
        return results;
      } finally {
        await client.dispose();
      }
    };
    const [notFound] = await iterate({ authorization: `Bearer ${key}` });
    expect(notFound?.errors).toEqual([
      { message: expect.any(String), path: ["jobEvents"], locations: [expect.any(Object)], extensions: { code: "NOT_FOUND" } },
    ]);
    // Refused at connect (issue #14) with graphql-ws's 4403 Forbidden, before any operation runs.
    await expect(iterate({})).rejects.toMatchObject({ code: 4403 });
  });
});
