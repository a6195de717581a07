import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerBeforeBodyEnds as answerEarly } from "../support/answer-before-body-ends.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * The largest body a caller with a key may send: MAX_UPLOAD_BYTES plus 1 MiB for the multipart envelope
 * (useRequestBodyLimit). A body announced past it is refused before it is read, a chunked one is cut off at
 * the limit, and a body within it is served.
 */

const MAX_UPLOAD_BYTES = 64 * 1024;
const LIMIT = MAX_UPLOAD_BYTES + 1024 * 1024;

let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await startTestApp({ env: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) } });
  ({ key } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

type Answer = { status: number; body: string };

/** Writes the start of a body with the key, then `moreChunks` chunks of 64 KiB, and waits for the answer before the body ends. */
const answerBeforeBodyEnds = (headers: Record<string, string>, firstBytes: string, moreChunks = 0): Promise<Answer> =>
  answerEarly(t.url, { authorization: `Bearer ${key}`, ...headers }, firstBytes, { moreChunks, chunkBytes: 64 * 1024 });

/** A whole POST with the key: its status and body. */
function post(headers: Record<string, string>, body: string): Promise<Answer> {
  const { port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port, path: "/graphql", method: "POST", headers: { authorization: `Bearer ${key}`, ...headers } }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode!, body: text }));
    });
    request.on("error", reject);
    request.end(body);
  });
}

const codeOf = (answer: Answer) => JSON.parse(answer.body).errors[0].extensions.code;

describe("the request body limit for a caller with a key", () => {
  it("a body announced over the limit is refused with 413 before it is read", async () => {
    const answer = await answerBeforeBodyEnds({ "content-type": "application/json", "content-length": String(LIMIT + 1) }, '{"query":"{ health { status } }","variables":{"pad":"');
    expect(answer.status).toBe(413);
    expect(codeOf(answer)).toBe("REQUEST_ENTITY_TOO_LARGE");
  });

  it("a chunked body is read only up to the limit", async () => {
    const chunks = Math.ceil(LIMIT / (64 * 1024)) + 2; // past the limit, and the request never ends
    const answer = await answerBeforeBodyEnds({ "content-type": "application/json", "transfer-encoding": "chunked" }, '{"query":"{ health { status } }","variables":{"pad":"', chunks);
    expect(answer.status).toBe(413);
    expect(codeOf(answer)).toBe("REQUEST_ENTITY_TOO_LARGE");
  });

  it("a body within the limit is served, announced or chunked", async () => {
    const body = JSON.stringify({ query: "{ health { status } }", variables: { pad: "x".repeat(MAX_UPLOAD_BYTES * 4) } });
    const framings: Array<Record<string, string>> = [{ "content-length": String(Buffer.byteLength(body)) }, { "transfer-encoding": "chunked" }];
    for (const headers of framings) {
      const answer = await post({ "content-type": "application/json", ...headers }, body);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).data.health.status).toBe("OK");
    }
  });
});
