/**
 * Persisted operations (issue 19): with PERSISTED_OPERATIONS=only the gateway
 * runs the SDK's manifest operations by hash and refuses any query text with a
 * typed error, over HTTP, SSE and graphql-ws; an unknown hash is refused too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AssetsDocument, GatewayError, JobEventsDocument, TesseraClient } from "../../packages/client/index.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
let key: string;

beforeAll(async () => {
  t = await startTestApp({ env: { PERSISTED_OPERATIONS: "only" } });
  ({ key } = await t.createProject());
}, 120_000);
afterAll(async () => {
  await t?.close();
});

const hashOf = (document: unknown) => (document as { __meta__: { hash: string } }).__meta__.hash.replace(/^sha256:/, "");

async function post(body: unknown) {
  const response = await fetch(t.url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
  return (await response.json()) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

describe("PERSISTED_OPERATIONS=only", () => {
  it("refuses a query's text with PERSISTED_OPERATION_REQUIRED and an unknown hash with PERSISTED_OPERATION_NOT_FOUND", async () => {
    const text = await post({ query: "{ assets(first: 1) { totalCount } }" });
    expect(text.data ?? null).toBeNull();
    expect(text.errors?.[0]?.extensions?.code).toBe("PERSISTED_OPERATION_REQUIRED");

    const unknown = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: "0".repeat(64) } } });
    expect(unknown.data ?? null).toBeNull();
    expect(unknown.errors?.[0]?.extensions?.code).toBe("PERSISTED_OPERATION_NOT_FOUND");
  });

  it("runs a listed operation by its hash, by hand and through the SDK's persisted mode", async () => {
    const known = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: hashOf(AssetsDocument) } }, variables: { first: 5 } });
    expect(known.errors).toBeUndefined();
    expect(known.data.assets).toMatchObject({ totalCount: 0, edges: [] });

    const client = new TesseraClient({ url: t.url, apiKey: key, persisted: true });
    try {
      const { assets } = await client.request(AssetsDocument, { first: 1 });
      expect(assets.totalCount).toBe(0);
      // Text the manifest does not list is refused, typed.
      const refused = await client.request("{ models { name } }").catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(GatewayError);
      expect((refused as GatewayError).code).toBe("PERSISTED_OPERATION_REQUIRED");
      // A listed subscription by hash over SSE gets past the allow-list (and the job is not found).
      const events = client.subscribe(JobEventsDocument, { id: "no-such-job" });
      const sse = await events.next().catch((error: unknown) => error);
      expect((sse as GatewayError).code).toBe("NOT_FOUND");
      // graphql-ws: a listed subscription by hash gets past the allow-list too, text is refused the same way.
      const byHash = client.subscribe(JobEventsDocument, { id: "no-such-job" }, { transport: "ws" });
      const wsHash = await byHash.next().catch((error: unknown) => error);
      expect((wsHash as GatewayError).code).toBe("NOT_FOUND");
      const ws = client.subscribe("subscription { jobEvents(id: \"x\") { status } }", {}, { transport: "ws" });
      const overWs = await ws.next().catch((error: unknown) => error);
      expect(overWs).toBeInstanceOf(GatewayError);
      expect((overWs as GatewayError).code).toBe("PERSISTED_OPERATION_REQUIRED");
    } finally {
      await client.close();
    }
  });
});
