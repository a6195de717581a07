import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAppContext, type AppContext } from "../../services/app/app-context.ts";
import { loadConfig } from "../../services/core/config.ts";
import { createLogger } from "../../services/core/logger.ts";
import { createGateway, type Gateway } from "../../services/gateway/gateway.ts";
import { eventually } from "../support/test-app.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

/*
 * Every log line written while a request is served carries its request id
 * (the caller's x-request-id, or a new one, sent back either way), and each
 * request ends with one access line: method, path, status, duration, and the
 * GraphQL operation when there was one.
 */
describe("request ids and access lines", () => {
  const lines: Array<Record<string, any>> = [];
  let app: AppContext;
  let gateway: Gateway;
  let url: string;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-logs-"));
    const config = loadConfig({ ...process.env, NODE_ENV: "test", DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: TEST_REDIS_URL, DATA_DIR: dataDir, QUEUE_PREFIX: `test-${randomUUID().slice(0, 8)}` });
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split("\n")) if (line.trim()) lines.push(JSON.parse(line));
        done();
      },
    });
    app = await createAppContext(config, createLogger("debug", "test", sink));
    gateway = createGateway(app);
    const address = await gateway.listen(0, "127.0.0.1");
    url = `http://127.0.0.1:${address.port}`;
  });
  afterAll(async () => {
    await gateway?.close();
    await app?.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const post = (query: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/graphql`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ query }) });

  it("puts the caller's x-request-id on every line of its request and answers with it", async () => {
    const requestId = `req-${randomUUID()}`;
    const response = await post("query HealthForLogs { health { status } }", { "x-request-id": requestId });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe(requestId);
    await response.text();
    const access = await eventually(async () => lines.find((line) => line.access && line.requestId === requestId), 10_000);
    expect(access).toMatchObject({ method: "POST", path: "/graphql", status: 200, operation: "HealthForLogs", durationMs: expect.any(Number), level: 30 });
    // yoga's own debug lines for this request (parsing, execution) carry the id too, and no line carries another request's.
    const ofRequest = lines.filter((line) => line.requestId === requestId);
    expect(ofRequest.length).toBeGreaterThan(1);
    expect(lines.filter((line) => line.requestId && line.requestId !== requestId)).toEqual([]);
  });

  it("makes a new id when the caller sends none, or one that is not an id", async () => {
    const plain = await post("{ health { status } }");
    const made = plain.headers.get("x-request-id");
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
    await plain.text();
    const odd = await post("{ health { status } }", { "x-request-id": "two words\tand a tab" });
    expect(odd.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    await odd.text();
    await eventually(async () => lines.some((line) => line.access && line.requestId === made), 10_000);
  });

  it("logs probes at debug, with their status", async () => {
    const response = await fetch(`${url}/live`);
    const requestId = response.headers.get("x-request-id");
    await response.text();
    const access = await eventually(async () => lines.find((line) => line.access && line.requestId === requestId), 10_000);
    expect(access).toMatchObject({ path: "/live", status: 200, level: 20 });
  });
});
