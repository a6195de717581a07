import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppContext } from "../../services/app/app-context.ts";
import { hashApiKey } from "../../services/core/api-keys.ts";
import { createGateway, type Gateway } from "../../services/gateway/gateway.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * Open subscriptions cost a gateway memory, a Redis channel and (before
 * issue #14) a database read every 2 s each. Here: a cap per project, an end
 * when the key is revoked, and no per-subscription polling. No worker runs,
 * so every job stays QUEUED and every subscription stays open and idle.
 */

const CAP = 3;
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { MAX_SUBSCRIPTIONS_PER_KEY: String(CAP), API_KEY_CACHE_MS: "500" } });
});
afterAll(async () => {
  await t?.close();
});

const subscription = `subscription ($id: ID!) { jobEvents(id: $id) { jobId status } }`;

async function queuedJob(key: string) {
  const response = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text: `idle ${Math.random()}` }, key);
  return response.data.ingest.job.id as string;
}

/** An SSE subscription: its events as they come, and a way to end it. */
function openSse(url: string, key: string, jobId: string) {
  const abort = new AbortController();
  const events: any[] = [];
  let ended = false;
  const done = (async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: subscription, variables: { id: jobId } }),
      signal: abort.signal,
    });
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").find((line) => line.startsWith("data: {"));
          if (block.includes("event: next") && data) events.push(JSON.parse(data.slice(6)));
        }
      }
    } catch {
      // aborted by the test
    }
    ended = true;
  })();
  return {
    events,
    get ended() {
      return ended;
    },
    done,
    close: () => abort.abort(),
  };
}

function wsClient(url: string, key: string): Client {
  return createClient({ url: url.replace("http", "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${key}` }, retryAttempts: 0 });
}

/** A graphql-ws subscription: its results, and when it completed. */
function openWs(client: Client, jobId: string) {
  const results: any[] = [];
  let ended = false;
  const done = new Promise<void>((resolve) => {
    client.subscribe(
      { query: subscription, variables: { id: jobId } },
      { next: (result) => void results.push(result), error: () => ((ended = true), resolve()), complete: () => ((ended = true), resolve()) },
    );
  });
  return {
    results,
    get ended() {
      return ended;
    },
    done,
  };
}

const until = async (check: () => boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
};

describe("a cap on open subscriptions per project", () => {
  it(`refuses the subscription past MAX_SUBSCRIPTIONS_PER_KEY (${CAP}), over SSE and graphql-ws together, with QUOTA_EXCEEDED`, async () => {
    const { key } = await t.createProject();
    const jobs = await Promise.all(Array.from({ length: CAP + 1 }, () => queuedJob(key)));
    const open = jobs.slice(0, CAP - 1).map((id) => openSse(t.url, key, id));
    const client = wsClient(t.url, key);
    try {
      const third = openWs(client, jobs[CAP - 1]!);
      expect(await until(() => third.results.length > 0 && open.every((sse) => sse.events.length > 0), 5000)).toBe(true);

      const refused = openSse(t.url, key, jobs[CAP]!);
      await refused.done;
      expect(refused.events).toHaveLength(1);
      expect(refused.events[0].errors[0].extensions).toMatchObject({ code: "QUOTA_EXCEEDED", details: { limit: CAP, variable: "MAX_SUBSCRIPTIONS_PER_KEY" } });
      const refusedWs = openWs(client, jobs[CAP]!);
      await refusedWs.done;
      expect(refusedWs.results[0].errors[0].extensions.code).toBe("QUOTA_EXCEEDED");

      // Another project is not affected.
      const other = await t.createProject();
      const theirs = openSse(t.url, other.key, await queuedJob(other.key));
      expect(await until(() => theirs.events.length > 0, 5000)).toBe(true);
      expect(theirs.events[0].data.jobEvents.status).toBe("QUEUED");
      theirs.close();

      // Closing one frees its place.
      open[0]!.close();
      await open[0]!.done;
      const again = await until(() => false, 300).then(() => openSse(t.url, key, jobs[CAP]!));
      expect(await until(() => again.events.length > 0, 5000)).toBe(true);
      expect(again.events[0].data?.jobEvents.status).toBe("QUEUED");
      again.close();
    } finally {
      for (const sse of open) sse.close();
      await client.dispose();
    }
  });
});

describe("revoking a key", () => {
  it("ends its open subscriptions, over SSE and graphql-ws, with UNAUTHENTICATED, within the key cache's time to live", async () => {
    const { key } = await t.createProject();
    const sse = openSse(t.url, key, await queuedJob(key));
    const client = wsClient(t.url, key);
    try {
      const ws = openWs(client, await queuedJob(key));
      expect(await until(() => sse.events.length > 0 && ws.results.length > 0, 5000)).toBe(true);

      await t.app.db.apiKey.update({ where: { hash: hashApiKey(key) }, data: { revokedAt: new Date() } });
      const revokedAt = Date.now();
      // API_KEY_CACHE_MS is 500 here; allow the timer's period and some load on top.
      expect(await until(() => sse.ended && ws.ended, 3000)).toBe(true);
      expect(Date.now() - revokedAt).toBeLessThan(3000);
      expect(sse.events.at(-1).errors[0].extensions.code).toBe("UNAUTHENTICATED");
      expect(ws.results.at(-1).errors[0].extensions.code).toBe("UNAUTHENTICATED");
    } finally {
      sse.close();
      await client.dispose();
    }
  });
});

describe("the event watch", () => {
  let counted: Gateway;
  let url: string;
  let jobReads = 0;
  beforeAll(async () => {
    // The real gateway over the real database, with every read of a job row counted.
    const db = new Proxy(t.app.db, {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (property === "job") {
          return new Proxy(value, {
            get(delegate, method) {
              const fn = Reflect.get(delegate, method);
              if (typeof fn !== "function" || !String(method).startsWith("find")) return fn;
              return (...args: unknown[]) => {
                jobReads++;
                return fn.apply(delegate, args);
              };
            },
          });
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    counted = createGateway({ ...t.app, db } as AppContext);
    const address = await counted.listen(0, "127.0.0.1");
    url = `http://127.0.0.1:${address.port}/graphql`;
  });
  afterAll(async () => {
    await counted?.close();
  });

  it("reads the database once per subscription at start, not on a timer per subscription", async () => {
    const { key } = await t.createProject();
    const jobs = await Promise.all(Array.from({ length: CAP }, () => queuedJob(key)));
    const before = jobReads;
    const open = jobs.map((id) => openSse(url, key, id));
    try {
      expect(await until(() => open.every((sse) => sse.events.length > 0), 5000)).toBe(true);
      const atStart = jobReads - before;
      await new Promise((resolve) => setTimeout(resolve, 6500));
      const whileIdle = jobReads - before - atStart;
      // Was 3 subscriptions x one read every 2 s = 9; a shared backstop reads all watched jobs in one query.
      expect(whileIdle).toBeLessThanOrEqual(2);
    } finally {
      for (const sse of open) sse.close();
    }
  });

  it("still delivers a change whose event was lost, from the shared backstop", async () => {
    const { key } = await t.createProject();
    const jobId = await queuedJob(key);
    const sse = openSse(url, key, jobId);
    try {
      expect(await until(() => sse.events.length > 0, 5000)).toBe(true);
      // Written without an event, as when a worker dies between its write and its publish.
      await t.app.db.job.update({ where: { id: jobId }, data: { status: "FAILED" } });
      expect(await until(() => sse.ended, 15_000)).toBe(true);
      expect(sse.events.at(-1).data.jobEvents).toEqual({ jobId, status: "FAILED" });
    } finally {
      sse.close();
    }
  });
});
