import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerBeforeBodyEnds as answerEarly } from "../support/answer-before-body-ends.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * What a caller without a valid key can make the gateway do: read a small
 * body, open no graphql-ws connection, send no large graphql-ws message.
 * Each test sends only the start of a body it announces as large, and expects
 * the answer before the rest: a gateway that read on would never answer.
 */

let t: TestApp;
let key: string;
beforeAll(async () => {
  t = await startTestApp({ env: { MAX_UNAUTHENTICATED_BODY_BYTES: "16384", GRAPHQL_WS_MAX_PAYLOAD_BYTES: "65536" } });
  ({ key } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

type Answer = { status: number; body: string; connection?: string };

/** Writes the start of a body (no key unless given), then `moreChunks` chunks of 16 KiB, and waits for the answer before the body ends. */
const answerBeforeBodyEnds = (headers: Record<string, string>, firstBytes: Buffer | string, moreChunks = 0): Promise<Answer> =>
  answerEarly(t.url, headers, firstBytes, { moreChunks, timeoutMs: 5000 });

describe("request bodies before the key is checked", () => {
  it("a keyless JSON body announced over the limit is refused with 413 before it is read", async () => {
    const answer = await answerBeforeBodyEnds(
      { "content-type": "application/json", "content-length": String(50 * 1024 * 1024) },
      '{"query":"{ health { status } }","variables":{"pad":"',
    );
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).errors[0].extensions.code).toBe("PAYLOAD_TOO_LARGE");
    // Closed after the answer: kept alive, the connection would have Node read and discard the other 50 MB.
    expect(answer.connection).toBe("close");
  });

  it("a keyless chunked JSON body is read only up to the limit", async () => {
    const answer = await answerBeforeBodyEnds(
      { "content-type": "application/json", "transfer-encoding": "chunked" },
      '{"query":"{ health { status } }","variables":{"pad":"',
      4, // 64 KiB, four times the limit, and the request never ends
    );
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).errors[0].extensions.code).toBe("PAYLOAD_TOO_LARGE");
    expect(answer.connection).toBe("close");
  });

  it("a keyless (or wrongly keyed) multipart upload is refused with 401 before a byte of it is read", async () => {
    for (const authorization of [undefined, "Bearer tsk_not-a-real-key"]) {
      const answer = await answerBeforeBodyEnds(
        {
          "content-type": "multipart/form-data; boundary=x",
          "content-length": String(50 * 1024 * 1024),
          ...(authorization ? { authorization } : {}),
        },
        "--x\r\n",
      );
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body).errors[0].extensions.code).toBe("UNAUTHENTICATED");
      expect(answer.connection).toBe("close");
    }
  });

  it("a keyless small request still gets health", async () => {
    const response = await t.graphql("{ health { status } }");
    expect(response.data.health.status).toBe("OK");
  });

  it("a caller with a key may still send a large body", async () => {
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: "{ health { status } }", variables: { pad: "x".repeat(512 * 1024) } }),
    });
    expect(response.status).toBe(200);
    expect((await response.json()).data.health.status).toBe("OK");
  });
});

/** Opens a raw graphql-ws socket, sends connection_init with `payload`, and reports how it ended. */
function connect(payload: Record<string, unknown>, then?: (socket: WebSocket) => void) {
  return new Promise<{ acked: boolean; closeCode?: number }>((resolve) => {
    const socket = new WebSocket(t.url.replace("http", "ws"), "graphql-transport-ws");
    let acked = false;
    const timer = setTimeout(() => {
      socket.close();
      resolve({ acked });
    }, 3000);
    socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload })));
    socket.on("message", (data) => {
      if (JSON.parse(String(data)).type === "connection_ack") {
        acked = true;
        then?.(socket);
      }
    });
    socket.on("close", (code) => {
      clearTimeout(timer);
      resolve({ acked, closeCode: code });
    });
  });
}

describe("graphql-ws", () => {
  it("refuses a connection without a valid key at connect, with 4403", async () => {
    expect(await connect({})).toEqual({ acked: false, closeCode: 4403 });
    expect(await connect({ authorization: "Bearer tsk_not-a-real-key" })).toEqual({ acked: false, closeCode: 4403 });
  });

  it("closes a connection that sends a message over GRAPHQL_WS_MAX_PAYLOAD_BYTES with 1009", async () => {
    const ended = await connect({ authorization: `Bearer ${key}` }, (socket) =>
      socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: "{ health { status } }", variables: { pad: "x".repeat(100 * 1024) } } })),
    );
    expect(ended).toEqual({ acked: true, closeCode: 1009 });
  });

  it("serves a keyed connection", async () => {
    const client = createClient({ url: t.url.replace("http", "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${key}` } });
    try {
      const results = [];
      for await (const result of client.iterate({ query: "{ health { status } }" })) results.push(result);
      expect(results).toEqual([{ data: { health: { status: "OK" } } }]);
    } finally {
      await client.dispose();
    }
  });
});
