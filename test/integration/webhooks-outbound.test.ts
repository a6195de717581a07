import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encryptSecret } from "../../services/webhooks/secret-box.ts";
import { verifySignature } from "../../services/webhooks/webhook-signature.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

// Short retries for the test; the defaults (15 tries from 30 s, doubling) spread over days.
process.env.WEBHOOK_RETRY_BASE_MS = "200";
process.env.WEBHOOK_DELIVERY_ATTEMPTS = "4";

type Received = { headers: IncomingHttpHeaders; body: string };

/** A local receiver: records every request and answers with the next planned status (200 when the plan is spent). */
class Receiver {
  readonly received: Received[] = [];
  plan: number[] = [];
  private server!: Server;
  port = 0;
  async start() {
    this.server = createServer((request, response) => {
      let body = "";
      request.setEncoding("utf8");
      request.on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        this.received.push({ headers: request.headers, body });
        response.statusCode = this.plan.shift() ?? 200;
        response.end("ok");
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  url(pathname = "/hook") {
    return `http://127.0.0.1:${this.port}${pathname}`;
  }
  close() {
    return new Promise((resolve) => this.server.close(resolve));
  }
}

let t: TestApp;
let allowed: Receiver;
let refused: Receiver;
beforeAll(async () => {
  allowed = await new Receiver().start();
  refused = await new Receiver().start();
  // Only the first receiver's host:port is opened; the second stays private, as every loopback address is by default.
  t = await startTestApp({ worker: true, noModels: true, env: { URL_ALLOW_HOSTS: `127.0.0.1:${allowed.port}` } });
});
afterAll(async () => {
  await t?.close();
  await allowed?.close();
  await refused?.close();
});

const SUBSCRIBE = `mutation ($url: String!, $events: [WebhookEvent!]!) {
  createWebhookSubscription(url: $url, events: $events) { secret subscription { id url events paused } } }`;
const PUBLISH = `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`;
const RUN = `mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`;
const DELIVERIES = `query ($sub: ID, $status: WebhookDeliveryStatus) { webhookDeliveries(subscriptionId: $sub, status: $status, first: 50) {
  edges { node { id event eventId status attempts responseStatus error payload deliveredAt } } } }`;

const workflow = (slug: string, step: string) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  text: { type: string }
steps:
${step}
`;
const ECHO = `  - id: echo\n    uses: transform\n    with: { text: "\${{ inputs.text }}" }`;
const FAIL = `  - id: boom\n    uses: transform\n    with: { x: "\${{ $error('boom') }}" }`;
const WAIT = `  - id: approve\n    uses: wait\n    with: { prompt: "ok?" }`;

async function waitFor<T>(what: string, read: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const bodies = (receiver: Receiver) => receiver.received.map((entry) => ({ ...entry, json: JSON.parse(entry.body) }));
const forSubject = (receiver: Receiver, type: string, id: string) =>
  bodies(receiver).filter((entry) => entry.json.type === type && (entry.json.data.run ?? entry.json.data.job ?? entry.json.data.asset)?.id === id);

async function subscribe(key: string, url: string, events: string[]) {
  const made = await t.graphql(SUBSCRIBE, { url, events }, key);
  expect(made.errors).toBeUndefined();
  return made.data.createWebhookSubscription as { secret: string; subscription: { id: string } };
}

describe("outbound webhooks", () => {
  it("run ends and waits reach a local receiver, signed with the subscription's secret", async () => {
    const { key, projectId } = await t.createProject();
    const { secret, subscription } = await subscribe(key, allowed.url(), ["RUN_SUCCEEDED", "RUN_FAILED", "RUN_WAITING"]);
    const row = await t.app.db.webhookSubscription.findUniqueOrThrow({ where: { id: subscription.id } });
    expect(JSON.stringify(row)).not.toContain(secret.slice(6)); // stored encrypted
    for (const [slug, step] of [["ok", ECHO], ["bad", FAIL], ["asks", WAIT]]) await t.graphql(PUBLISH, { d: workflow(slug!, step!) }, key);

    const ok = (await t.graphql(RUN, { slug: "ok", input: { text: "hi" } }, key)).data.runWorkflow.id;
    const bad = (await t.graphql(RUN, { slug: "bad", input: { text: "hi" } }, key)).data.runWorkflow.id;
    const asks = (await t.graphql(RUN, { slug: "asks", input: { text: "hi" } }, key)).data.runWorkflow.id;
    const [succeeded] = await waitFor("run.succeeded", () => forSubject(allowed, "run.succeeded", ok), (found) => found.length > 0);
    const [failed] = await waitFor("run.failed", () => forSubject(allowed, "run.failed", bad), (found) => found.length > 0);
    const [waiting] = await waitFor("run.waiting", () => forSubject(allowed, "run.waiting", asks), (found) => found.length > 0);

    for (const entry of [succeeded!, failed!, waiting!]) {
      const check = verifySignature(secret, entry.headers["tessera-signature"] as string, entry.body, { toleranceSeconds: 300 });
      expect(check.ok).toBe(true);
      expect(entry.headers["content-type"]).toBe("application/json");
      expect(entry.headers["tessera-event"]).toBe(entry.json.type);
      expect(entry.json.projectId).toBe(projectId);
    }
    expect(verifySignature("whsec_other", succeeded!.headers["tessera-signature"] as string, succeeded!.body, { toleranceSeconds: 300 }).ok).toBe(false);
    expect(succeeded!.json.data.run).toMatchObject({ id: ok, workflow: "ok", status: "SUCCEEDED" });
    expect(failed!.json.data.run).toMatchObject({ id: bad, status: "FAILED", error: { code: expect.any(String) } });
    expect(waiting!.json.data.run).toMatchObject({ id: asks, status: "WAITING", waiting: [{ step: "approve", prompt: "ok?" }] });

    // The log: one SUCCEEDED delivery per event, whose id is the Tessera-Delivery header.
    const log = await t.graphql(DELIVERIES, { sub: subscription.id }, key);
    expect(log.errors).toBeUndefined();
    const nodes = log.data.webhookDeliveries.edges.map((edge: { node: any }) => edge.node);
    expect(nodes.map((node: { event: string }) => node.event).sort()).toEqual(["RUN_FAILED", "RUN_SUCCEEDED", "RUN_WAITING"]);
    expect(nodes.every((node: { status: string; attempts: number; responseStatus: number }) => node.status === "SUCCEEDED" && node.attempts === 1 && node.responseStatus === 200)).toBe(true);
    const okNode = nodes.find((node: { event: string }) => node.event === "RUN_SUCCEEDED");
    expect(succeeded!.headers["tessera-delivery"]).toBe(okNode.id);
    expect(succeeded!.json.id).toBe(okNode.eventId);

    // Another project sees none of it, and its runs are not sent here.
    const other = await t.createProject();
    expect((await t.graphql(DELIVERIES, {}, other.key)).data.webhookDeliveries.edges).toEqual([]);
    const foreign = await t.graphql(`mutation ($id: ID!) { redeliverWebhook(id: $id) { id } }`, { id: okNode.id }, other.key);
    expect(foreign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  }, 120_000);

  it("a receiver answering 500 gets the same delivery again with backoff until it answers 2xx; a dead one ends FAILED and can be redelivered", async () => {
    const { key } = await t.createProject();
    const { subscription } = await subscribe(key, allowed.url("/flaky"), ["RUN_SUCCEEDED"]);
    await t.graphql(PUBLISH, { d: workflow("flaky", ECHO) }, key);
    allowed.plan = [500, 503];
    const runId = (await t.graphql(RUN, { slug: "flaky", input: { text: "x" } }, key)).data.runWorkflow.id;
    const tries = await waitFor("three tries", () => forSubject(allowed, "run.succeeded", runId), (found) => found.length >= 3);
    expect(new Set(tries.map((entry) => entry.headers["tessera-delivery"])).size).toBe(1);
    const delivered = await waitFor(
      "the delivery to be SUCCEEDED",
      async () => (await t.graphql(DELIVERIES, { sub: subscription.id }, key)).data.webhookDeliveries.edges.map((edge: { node: any }) => edge.node),
      (nodes) => nodes[0]?.status === "SUCCEEDED",
    );
    expect(delivered[0]).toMatchObject({ attempts: 3, responseStatus: 200, error: null });

    // Always 500: FAILED after WEBHOOK_DELIVERY_ATTEMPTS (4) tries, the last status and error kept.
    allowed.plan = [500, 500, 500, 500];
    const second = (await t.graphql(RUN, { slug: "flaky", input: { text: "y" } }, key)).data.runWorkflow.id;
    const failed = await waitFor(
      "the delivery to be FAILED",
      async () => (await t.graphql(DELIVERIES, { sub: subscription.id, status: "FAILED" }, key)).data.webhookDeliveries.edges.map((edge: { node: any }) => edge.node),
      (nodes) => nodes.length === 1,
    );
    expect(failed[0]).toMatchObject({ attempts: 4, responseStatus: 500, error: "FETCH_FAILED: the receiver answered 500" });
    expect(forSubject(allowed, "run.succeeded", second)).toHaveLength(4);

    // Redeliver: a fresh set of tries, the same delivery id; the receiver is healthy now.
    const again = await t.graphql(`mutation ($id: ID!) { redeliverWebhook(id: $id) { id status } }`, { id: failed[0].id }, key);
    expect(again.data.redeliverWebhook).toEqual({ id: failed[0].id, status: "PENDING" });
    await waitFor("the redelivery", () => forSubject(allowed, "run.succeeded", second), (found) => found.length === 5);
    expect(forSubject(allowed, "run.succeeded", second).at(-1)!.headers["tessera-delivery"]).toBe(failed[0].id);
    await waitFor("SUCCEEDED after redelivery", () => t.app.db.webhookDelivery.findUniqueOrThrow({ where: { id: failed[0].id } }), (row) => row.status === "SUCCEEDED");
  }, 120_000);

  it("private addresses are refused unless URL_ALLOW_HOSTS lists them: at subscription, and again at every delivery", async () => {
    const { key, projectId } = await t.createProject();
    for (const url of [refused.url(), `http://localhost:${refused.port}/`, "http://10.0.0.1/hook", "http://[::1]:9/", "http://169.254.169.254/latest"]) {
      const made = await t.graphql(SUBSCRIBE, { url, events: ["RUN_SUCCEEDED"] }, key);
      expect(made.errors?.[0]?.extensions?.code, url).toBe("URL_NOT_ALLOWED");
    }
    for (const url of ["ftp://example.com/", "not a url", "https://user:pw@example.com/"]) {
      expect((await t.graphql(SUBSCRIBE, { url, events: ["RUN_SUCCEEDED"] }, key)).errors?.[0]?.extensions?.code, url).toBe("BAD_USER_INPUT");
    }
    expect(await t.app.db.webhookSubscription.count({ where: { projectId } })).toBe(0);

    // A name that resolves to loopback passes the first look; the guard refuses it at delivery, with no retry.
    const named = await subscribe(key, `http://localhost.:${refused.port}/hook`, ["RUN_SUCCEEDED"]);
    // And one stored while its address was allowed (the allow-list changed since).
    const stale = await t.app.db.webhookSubscription.create({
      data: { projectId, url: refused.url(), events: ["run.succeeded"], secretEncrypted: encryptSecret("whsec_x") },
    });
    await t.graphql(PUBLISH, { d: workflow("guarded", ECHO) }, key);
    await t.graphql(RUN, { slug: "guarded", input: { text: "x" } }, key);
    const rows = await waitFor(
      "both deliveries to fail",
      () => t.app.db.webhookDelivery.findMany({ where: { projectId } }),
      (found) => found.length === 2 && found.every((row) => row.status === "FAILED"),
    );
    for (const row of rows) {
      expect(row).toMatchObject({ attempts: 1, responseStatus: null });
      expect(row.error).toMatch(/^URL_NOT_ALLOWED: /);
    }
    expect([named.subscription.id, stale.id].sort()).toEqual(rows.map((row) => row.subscriptionId).sort());
    expect(refused.received).toEqual([]);
  }, 120_000);

  it("job.succeeded and asset.ready are sent for an ingest; a paused subscription gets nothing; unknown events are refused", async () => {
    const { key } = await t.createProject();
    const { subscription } = await subscribe(key, allowed.url("/assets"), ["JOB_SUCCEEDED", "ASSET_READY"]);
    const pausedSub = await subscribe(key, allowed.url("/paused"), ["JOB_SUCCEEDED", "ASSET_READY"]);
    await t.graphql(`mutation ($id: ID!) { pauseWebhookSubscription(id: $id) { paused } }`, { id: pausedSub.subscription.id }, key);
    const made = await t.graphql(`mutation { ingest(input: { text: "hook me", tags: ["t"] }) { asset { id } job { id } } }`, {}, key);
    const { asset, job } = made.data.ingest;
    const [jobEvent] = await waitFor("job.succeeded", () => forSubject(allowed, "job.succeeded", job.id), (found) => found.length > 0);
    const [assetEvent] = await waitFor("asset.ready", () => forSubject(allowed, "asset.ready", asset.id), (found) => found.length > 0);
    expect(jobEvent!.json.data.job).toMatchObject({ id: job.id, kind: "INGEST", status: "SUCCEEDED", assetId: asset.id });
    expect(assetEvent!.json.data.asset).toMatchObject({ id: asset.id, modality: "TEXT", status: "READY", tags: ["t"] });
    const deliveries = await t.app.db.webhookDelivery.findMany({ where: { subscriptionId: { in: [subscription.id, pausedSub.subscription.id] } } });
    expect(deliveries.map((row) => row.subscriptionId)).toEqual([subscription.id, subscription.id]);

    const unknown = await t.graphql(SUBSCRIBE, { url: allowed.url(), events: ["RUN_EXPLODED"] }, key);
    expect(unknown.errors?.[0]?.message).toContain("RUN_EXPLODED");
    const deleted = await t.graphql(`mutation ($id: ID!) { deleteWebhookSubscription(id: $id) { id } }`, { id: subscription.id }, key);
    expect(deleted.errors).toBeUndefined();
    expect(await t.app.db.webhookDelivery.count({ where: { subscriptionId: subscription.id } })).toBe(0);
  }, 120_000);

  it("a job's end queues its event only for a project subscribed to it, and one subscribed a moment before the job ends gets it", async () => {
    const { key } = await t.createProject();
    const queued = async (jobId: string) => {
      const jobs = await t.app.queues.queue("project-event").getJobs(["waiting", "active", "delayed", "completed", "failed"]);
      return jobs.filter((entry) => entry?.data?.subjectId === jobId).map((entry) => entry.data.type as string);
    };
    const ingestAndFinish = async (text: string) => {
      const made = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text }, key);
      expect(made.errors).toBeUndefined();
      const id = made.data.ingest.job.id as string;
      await waitFor(`job ${id}`, () => t.app.db.job.findUnique({ where: { id } }), (job) => job?.status === "SUCCEEDED");
      return id;
    };

    // No subscription: no project-event job for the job's end (asset.ready still goes out, for asset triggers).
    const quiet = await ingestAndFinish("nobody listens");
    // A subscription to other events (and a paused one to this event) changes nothing.
    await subscribe(key, allowed.url("/failed-only"), ["JOB_FAILED"]);
    const paused = await subscribe(key, allowed.url("/paused-succeeded"), ["JOB_SUCCEEDED"]);
    await t.graphql(`mutation ($id: ID!) { pauseWebhookSubscription(id: $id) { paused } }`, { id: paused.subscription.id }, key);
    const other = await ingestAndFinish("listens to failures only");
    expect(await queued(quiet)).toEqual([]);
    expect(await queued(other)).toEqual([]);

    // Subscribed just now: the next job's end is queued and delivered.
    await subscribe(key, allowed.url("/fresh"), ["JOB_SUCCEEDED"]);
    const heard = await ingestAndFinish("now somebody listens");
    // Queued just after the job's end commits (from the outbox row written with it).
    expect(await waitFor("job.succeeded queued", () => queued(heard), (types) => types.length > 0)).toEqual(["job.succeeded"]);
    const [delivered] = await waitFor("job.succeeded", () => forSubject(allowed, "job.succeeded", heard), (found) => found.length > 0);
    expect(delivered!.json.data.job).toMatchObject({ id: heard, status: "SUCCEEDED" });
    expect(forSubject(allowed, "job.succeeded", quiet)).toEqual([]);
  }, 120_000);
});
