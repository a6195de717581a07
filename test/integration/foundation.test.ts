import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

describe("health", () => {
  it("reports each dependency without an API key", async () => {
    const response = await t.graphql("{ health { status redis postgres vectorStore checks { name state } } }");
    expect(response.errors).toBeUndefined();
    expect(response.data.health).toMatchObject({ status: "OK", redis: "OK", postgres: "OK", vectorStore: "OK" });
  });
});

describe("authentication", () => {
  it("refuses an operation without a key with a typed UNAUTHENTICATED error", async () => {
    const response = await t.graphql(`{ job(id: "00000000-0000-0000-0000-000000000000") { id } }`);
    expect(response.data).toBeUndefined();
    expect(response.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    expect(JSON.stringify(response)).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });

  it("refuses an unknown or malformed key", async () => {
    for (const key of ["tsk_not-a-real-key", "garbage"]) {
      const response = await t.graphql(`{ assets { edges { node { id } } } }`, undefined, key);
      expect(response.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    }
  });

  it("does not let health smuggle a private field past the gate", async () => {
    const response = await t.graphql(`{ health { status } assets { edges { node { id } } } }`);
    expect(response.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    expect(response.data).toBeUndefined();
  });
});

describe("project scoping", () => {
  it("never shows one project's assets or jobs to another project's key", async () => {
    const a = await t.createProject();
    const b = await t.createProject();
    const ingested = await t.graphql(
      `mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`,
      { text: `private to A ${Date.now()}` },
      a.key,
    );
    expect(ingested.errors).toBeUndefined();
    const { asset, job } = ingested.data.ingest;

    const asB = await t.graphql(`query ($id: ID!) { asset(id: $id) { id } }`, { id: asset.id }, b.key);
    expect(asB.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const jobAsB = await t.graphql(`query ($id: ID!) { job(id: $id) { id } }`, { id: job.id }, b.key);
    expect(jobAsB.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const listAsB = await t.graphql(`{ assets { edges { node { id } } } }`, undefined, b.key);
    expect(listAsB.data.assets.edges).toEqual([]);

    const asA = await t.graphql(`query ($id: ID!) { asset(id: $id) { id } }`, { id: asset.id }, a.key);
    expect(asA.data.asset.id).toBe(asset.id);
  });
});

describe("walking skeleton", () => {
  it("ingests text through GraphQL, runs the job on the worker, and reports it done", async () => {
    const { key } = await t.createProject();
    const ingested = await t.graphql(
      `mutation { ingest(input: { text: "hello tessera", metadata: { lang: "en" } }) { asset { id modality sha256 mimeType byteSize status } job { id status } } }`,
      undefined,
      key,
    );
    expect(ingested.errors).toBeUndefined();
    const { asset, job } = ingested.data.ingest;
    expect(asset).toMatchObject({ modality: "TEXT", mimeType: "text/plain", byteSize: 13 });
    expect(asset.sha256).toMatch(/^[0-9a-f]{64}$/);

    const done = await eventually(async () => {
      const response = await t.graphql(`query ($id: ID!) { job(id: $id) { status progress error { code } } }`, { id: job.id }, key);
      return response.data.job.status === "SUCCEEDED" ? response.data.job : null;
    });
    expect(done.progress).toBe(1);
    const after = await t.graphql(`query ($id: ID!) { asset(id: $id) { status } }`, { id: asset.id }, key);
    expect(after.data.asset.status).toBe("READY");
  });

  it("makes the same content one asset; an idempotency key returns the first result, and refuses other content", async () => {
    const { key, projectId } = await t.createProject();
    const ingest = (text: string, idempotencyKey?: string) =>
      t.graphql(
        `mutation ($text: String!, $k: String) { ingest(input: { text: $text, idempotencyKey: $k }) { asset { id } job { id } } }`,
        { text, k: idempotencyKey },
        key,
      );
    const first = await ingest("same bytes");
    const second = await ingest("same bytes");
    expect(second.data.ingest.asset.id).toBe(first.data.ingest.asset.id);

    const keyed = await ingest("first body", "request-1");
    const retried = await ingest("first body", "request-1");
    expect(retried.data.ingest).toEqual(keyed.data.ingest);
    // The key names one request: other content under it is a conflict, not a silent answer about the first.
    const conflicting = await ingest("a different body", "request-1");
    expect(conflicting.errors?.[0]?.extensions?.code).toBe("IDEMPOTENCY_CONFLICT");
    // "same bytes" once, "first body" once; the retried and the conflicting requests stored nothing new.
    expect(await t.app.db.asset.count({ where: { projectId } })).toBe(2);
    expect(await t.app.db.job.count({ where: { projectId } })).toBe(2);
  });

  it("refuses two sources at once and stores nothing", async () => {
    const { key, projectId } = await t.createProject();
    const response = await t.graphql(`mutation { ingest(input: { text: "a", url: "https://example.com" }) { asset { id } } }`, undefined, key);
    expect(response.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(await t.app.db.asset.count({ where: { projectId } })).toBe(0);
    expect(await t.app.db.job.count({ where: { projectId } })).toBe(0);
  });
});
