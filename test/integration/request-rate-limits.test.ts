import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RequestRateLimits } from "../../services/limits/request-rate-limits.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/** One POST to /graphql, keeping the status and headers the limits set. */
async function post(url: string, query: string, key?: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return { status: response.status, retryAfter: response.headers.get("retry-after"), body: (await response.json()) as any };
}

const MODELS = "{ models { name } }";

describe("requests per second per project", () => {
  let t: TestApp;
  beforeAll(async () => {
    // 2 a second plus 5 more per 10 s; the address limit is left generous so only the project's counts.
    t = await startTestApp({ env: { RATE_LIMIT_PROJECT_PER_SECOND: "2", RATE_LIMIT_PROJECT_BURST: "5" } });
  });
  afterAll(() => t?.close());

  it("answers a burst past the rate with RATE_LIMITED, 429 and Retry-After, while another project is still served", async () => {
    const noisy = await t.createProject();
    const quiet = await t.createProject();
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(t.url, MODELS, noisy.key)));
    const served = answers.filter((answer) => answer.status === 200);
    const refused = answers.filter((answer) => answer.status === 429);
    expect(served.length + refused.length).toBe(20);
    // The steady rate alone would serve 2; the burst lets 5 more through.
    expect(served.length).toBeGreaterThanOrEqual(7);
    expect(refused.length).toBeGreaterThan(0);
    for (const answer of served) expect(answer.body.errors).toBeUndefined();
    for (const answer of refused) {
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
      const [error] = answer.body.errors;
      expect(error.extensions.code).toBe("RATE_LIMITED");
      expect(error.extensions.details.retryAfterSeconds).toBe(Number(answer.retryAfter));
      expect(error.extensions.http).toBeUndefined();
      expect(answer.body.data).toBeUndefined();
    }

    const other = await post(t.url, MODELS, quiet.key);
    expect(other.status).toBe(200);
    expect(other.body.errors).toBeUndefined();
    expect(Array.isArray(other.body.data.models)).toBe(true);
  });
});

describe("requests per second per client address", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_ADDRESS_PER_SECOND: "3", RATE_LIMIT_ADDRESS_BURST: "0" } });
  });
  afterAll(() => t?.close());

  it("refuses requests from one address past the rate before the key is known, on every route", async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(t.url, "{ health { status } }")));
    const refused = answers.filter((answer) => answer.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.body.errors[0].extensions.code).toBe("RATE_LIMITED");
    expect(Number(refused[0]!.retryAfter)).toBeGreaterThanOrEqual(1);

    // Not only /graphql: the workflow JSON Schema route is counted too.
    const schemaUrl = new URL("/schemas/workflow.json", t.url).toString();
    const schemas = await Promise.all(Array.from({ length: 10 }, () => fetch(schemaUrl).then(async (r) => (await r.arrayBuffer(), r.status))));
    expect(schemas).toContain(429);
  });
});

describe("one Redis call per request for its rate counts", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_PROJECT_PER_SECOND: "50", RATE_LIMIT_PROJECT_BURST: "0", RATE_LIMIT_ADDRESS_PER_SECOND: "50", RATE_LIMIT_ADDRESS_BURST: "0" } });
  });
  afterAll(() => t?.close());

  it("counts the address and a known key's project in one round trip, and each operation once", async () => {
    const { key } = await t.createProject();
    expect((await post(t.url, MODELS, key)).status).toBe(200); // the key is now in the gateway's cache
    // MONITOR sees every command Redis runs; this app's rate counts are the ones naming its QUEUE_PREFIX's limit keys.
    const prefix = `${t.app.config.QUEUE_PREFIX}:limits`;
    const monitor = await t.app.redis.duplicate().monitor();
    const counted: string[][] = [];
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args.some((arg) => String(arg).startsWith(prefix))) counted.push(args.map(String));
    });
    try {
      for (let i = 0; i < 5; i++) expect((await post(t.url, MODELS, key)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      monitor.disconnect();
    }
    // One script call per request, naming both the address's keys and the project's.
    const calls = counted.filter((args) => !["set", "incrby", "pttl", "expire"].includes(args[0]!.toLowerCase()));
    expect(calls).toHaveLength(5);
    for (const call of calls) {
      expect(call.some((arg) => arg.startsWith(`${prefix}:address:`))).toBe(true);
      expect(call.some((arg) => arg.startsWith(`${prefix}:project:`))).toBe(true);
    }

    // Each operation is counted once: 50 a second lets 50 of 60 through, not 25.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const answers = await Promise.all(Array.from({ length: 60 }, () => post(t.url, MODELS, key)));
    expect(answers.filter((answer) => answer.status === 200).length).toBeGreaterThanOrEqual(45);
  });
});

describe("a query served while it is counted", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMIT_PROJECT_PER_SECOND: "10", RATE_LIMIT_PROJECT_BURST: "0", RATE_LIMIT_ADDRESS_PER_SECOND: "0" } });
  });
  afterAll(() => t?.close());

  it("still gets RATE_LIMITED and no data when other gateways spent the project's rate meanwhile", async () => {
    const { key, projectId } = await t.createProject();
    // Counted and cached: this gateway now sees the project well under its rate, so the next query runs beside its count.
    expect((await post(t.url, MODELS, key)).status).toBe(200);
    // Another gateway process (same Redis, same prefix) spends the rest of this second's rate.
    const other = new RequestRateLimits(t.app);
    await Promise.all(Array.from({ length: 12 }, () => other.countProject(projectId).catch(() => {})));
    const answer = await post(t.url, MODELS, key);
    expect(answer.status).toBe(429);
    expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(answer.body.errors[0].extensions.code).toBe("RATE_LIMITED");
    expect(answer.body.data).toBeUndefined();
  });
});

describe("a search served while it is counted", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it("sends its count to Redis after the search's first call to the vector store, not before it", async () => {
    const { key } = await t.createProject();
    expect((await post(t.url, MODELS, key)).status).toBe(200); // cached, and counted well under the rates
    const order: string[] = [];
    const store = t.app.vectorStore;
    t.app.vectorStore = new Proxy(store, {
      get: (target, property, receiver) =>
        property === "vectorsOf"
          ? async () => (order.push("vectorsOf"), [{ space: "sentence", chunk: 0, model: "m", text: "", vector: new Float32Array([1, 0]) }])
          : property === "nearVector"
            ? async () => []
            : Reflect.get(target, property, receiver),
    });
    const redis = t.app.redis as unknown as { sendCommand(command: { name: string }): unknown };
    const send = redis.sendCommand;
    redis.sendCommand = function (command) {
      if (command.name.toLowerCase().startsWith("eval")) order.push("count");
      return send.call(this, command);
    };
    try {
      const answer = await post(t.url, `{ search(input: { assetId: "${randomUUID()}" }) { hits { score } } }`, key);
      expect(answer.status).toBe(200);
      expect(answer.body.data.search.hits).toEqual([]);
    } finally {
      t.app.vectorStore = store;
      redis.sendCommand = send;
    }
    // The count's write (and Redis waking for it) overlaps the store's answer instead of delaying the query.
    expect(order).toEqual(["vectorsOf", "count"]);
  });

  it("holds a count sent later as on its way at once, so requests arriving together cannot all be served beside theirs", async () => {
    const config = { ...t.app.config, RATE_LIMIT_PROJECT_PER_SECOND: 10, RATE_LIMIT_PROJECT_BURST: 0, RATE_LIMIT_ADDRESS_PER_SECOND: 0 };
    const limits = new RequestRateLimits({ redis: t.app.redis, logger: t.app.logger, config });
    const projectId = randomUUID();
    await limits.countProject(projectId);
    expect(limits.hasRoom(undefined, projectId)).toBe(true); // 1 of 10 counted
    let send!: () => void;
    const later = new Promise<void>((resolve) => (send = resolve));
    const counts = Array.from({ length: 4 }, () => limits.countRequest(undefined, projectId, later));
    // Nothing has gone to Redis yet, but 1 + 4 is not under half the rate.
    expect(limits.hasRoom(undefined, projectId)).toBe(false);
    send();
    await Promise.all(counts);
    expect(limits.hasRoom(undefined, projectId)).toBe(false); // 5 counted
  });
});
