import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayError, TesseraClient } from "../../packages/client/index.ts";
import type { JobStatus } from "../../services/core/database.ts";
import { watchedJobCount } from "../../services/gateway/watch-job.ts";
import { MAX_WATCHED_JOBS } from "../../services/gateway/watch-jobs.ts";
import { UNSUBSCRIBE_BATCH_MS } from "../../services/queue/event-bus.ts";
import { statementsOf } from "../support/pg-statements.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// jobsEvents: many jobs followed on one stream (one request, one statement for their first states, one shared recheck).
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const SUBSCRIPTION = `subscription ($ids: [ID!]!) { jobsEvents(ids: $ids) { jobId status progress } }`;
type Event = { jobId: string; status: string; progress: number };

const clients: TesseraClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
});
function clientOf(key: string) {
  const client = new TesseraClient({ url: t.url, apiKey: key });
  clients.push(client);
  return client;
}

function follow(key: string, ids: string[]): AsyncGenerator<Event> {
  const results = clientOf(key).subscribe<{ jobsEvents: Event }, { ids: string[] }>(SUBSCRIPTION, { ids });
  return (async function* () {
    try {
      for await (const result of results) yield result.jobsEvents;
    } finally {
      await results.return(undefined);
    }
  })();
}

async function take<T>(events: AsyncIterator<T>, count: number): Promise<T[]> {
  const taken: T[] = [];
  while (taken.length < count) {
    const next = await events.next();
    if (next.done) throw new Error(`the stream ended after ${taken.length} of ${count} events`);
    taken.push(next.value);
  }
  return taken;
}

async function jobsOf(projectId: string, statuses: JobStatus[]): Promise<string[]> {
  const jobs = await t.app.db.job.createManyAndReturn({ data: statuses.map((status) => ({ projectId, kind: "GENERATE" as const, status })), select: { id: true } });
  return jobs.map((job) => job.id);
}

/** What a worker does: the row first, then the event. */
async function change(id: string, status: JobStatus, progress: number) {
  const finished = status === "SUCCEEDED" || status === "FAILED" || status === "CANCELLED";
  const job = await t.app.db.job.update({ where: { id }, data: { status, progress, ...(finished ? { finishedAt: new Date() } : {}) } });
  t.app.events.publish("job", id, { jobId: id, status, progress, at: job.updatedAt.toISOString() });
}

async function refusal(key: string, ids: string[]): Promise<GatewayError> {
  const events = follow(key, ids);
  const error = await events.next().then(
    (first) => new Error(`an event came: ${JSON.stringify(first)}`),
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(GatewayError);
  return error as GatewayError;
}

const shape = (events: Event[]) => events.map((event) => [event.jobId, event.status, event.progress]);

describe("jobsEvents", () => {
  it("gives every job's state now, in the order asked, then each change of any, and ends after the last finishes", async () => {
    const { key, projectId } = await t.createProject();
    const [a, b, c] = await jobsOf(projectId, ["QUEUED", "RUNNING", "QUEUED"]);
    await t.app.db.job.update({ where: { id: b }, data: { progress: 0.25 } });
    const events = follow(key, [a!, b!, c!]);
    expect(shape(await take(events, 3))).toEqual([
      [a, "QUEUED", 0],
      [b, "RUNNING", 0.25],
      [c, "QUEUED", 0],
    ]);
    await change(a!, "RUNNING", 0.5);
    expect(shape(await take(events, 1))).toEqual([[a, "RUNNING", 0.5]]);
    await change(a!, "SUCCEEDED", 1);
    expect(shape(await take(events, 1))).toEqual([[a, "SUCCEEDED", 1]]);
    await change(c!, "FAILED", 0);
    expect(shape(await take(events, 1))).toEqual([[c, "FAILED", 0]]);
    await change(b!, "SUCCEEDED", 1);
    expect(shape(await take(events, 1))).toEqual([[b, "SUCCEEDED", 1]]);
    expect(await events.next()).toEqual({ done: true, value: undefined });
  });

  it("follows real ingests through the SDK's followJobs until the last is done", async () => {
    const { key } = await t.createProject();
    const client = clientOf(key);
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const response = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { job { id } } }`, { text: `many ${n} ${Math.random()}` }, key);
      ids.push(response.data.ingest.job.id);
    }
    const seen: Array<{ jobId: string; status: string }> = [];
    for await (const event of client.followJobs(ids)) seen.push(event);
    expect(new Set(seen.slice(0, 3).map((event) => event.jobId))).toEqual(new Set(ids));
    for (const id of ids) expect(seen.filter((event) => event.jobId === id).at(-1)?.status).toBe("SUCCEEDED");
  });

  it("fails with NOT_FOUND, before any event, when one id is another project's job or no job, saying the same of both", async () => {
    const mine = await t.createProject();
    const theirs = await t.createProject();
    const [own] = await jobsOf(mine.projectId, ["QUEUED"]);
    const [other] = await jobsOf(theirs.projectId, ["QUEUED"]);
    const nobody = crypto.randomUUID();
    const ofOther = await refusal(mine.key, [own!, other!]);
    expect(ofOther.code).toBe("NOT_FOUND");
    expect(ofOther.message).toContain(other);
    const ofNone = await refusal(mine.key, [own!, nobody]);
    expect(ofNone.code).toBe("NOT_FOUND");
    expect(ofNone.message.replace(nobody, "ID")).toBe(ofOther.message.replace(other!, "ID"));
    // The raw stream: an error and nothing else.
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${mine.key}` },
      body: JSON.stringify({ query: SUBSCRIPTION, variables: { ids: [own, other] } }),
    });
    const text = await response.text();
    expect(text).toContain("NOT_FOUND");
    expect(text).not.toContain('"status"');
    await eventually(async () => watchedJobCount(t.app) === 0);
  });

  it("refuses an empty list and more than MAX_WATCHED_JOBS distinct ids with BAD_USER_INPUT; a repeated id counts once", async () => {
    const { key, projectId } = await t.createProject();
    const empty = await refusal(key, []);
    expect(empty.code).toBe("BAD_USER_INPUT");
    const ids = await jobsOf(projectId, Array.from({ length: MAX_WATCHED_JOBS }, () => "SUCCEEDED" as const));
    const tooMany = await refusal(key, [...ids, crypto.randomUUID()]);
    expect(tooMany.code).toBe("BAD_USER_INPUT");
    expect(tooMany.details).toMatchObject({ limit: "MAX_WATCHED_JOBS", value: MAX_WATCHED_JOBS, given: MAX_WATCHED_JOBS + 1 });
    // The limit's worth of jobs, one of them twice: each job's state once, then the end (all finished).
    const all: Event[] = [];
    for await (const event of follow(key, [...ids, ids[0]!])) all.push(event);
    expect(all.map((event) => event.jobId)).toEqual(ids);
  });

  it("releases its bus subscriptions and rechecks when the client leaves mid-stream", async () => {
    const { key, projectId } = await t.createProject();
    const ids = await jobsOf(projectId, ["QUEUED", "QUEUED", "RUNNING"]);
    const events = follow(key, ids);
    await take(events, 3);
    const channels = ids.map((id) => `${t.app.config.QUEUE_PREFIX}:events:job:${id}`);
    const subscribers = async () => {
      const reply = (await t.app.redis.call("PUBSUB", "SHARDNUMSUB", ...channels)) as Array<string | number>;
      return reply.filter((_, index) => index % 2 === 1);
    };
    expect(await subscribers()).toEqual([1, 1, 1]);
    expect(watchedJobCount(t.app)).toBe(3);
    await events.return(undefined);
    await eventually(async () => watchedJobCount(t.app) === 0);
    await new Promise((resolve) => setTimeout(resolve, UNSUBSCRIBE_BATCH_MS * 3));
    await eventually(async () => (await subscribers()).every((count) => count === 0));
  });

  it("reads the first states of N jobs with one statement on Job", async () => {
    const { key, projectId } = await t.createProject();
    const ids = await jobsOf(projectId, ["SUCCEEDED", "FAILED", "CANCELLED", "SUCCEEDED", "SUCCEEDED"]);
    const statuses: string[] = [];
    const sent = await statementsOf(async () => {
      for await (const event of follow(key, ids)) statuses.push(event.status);
    });
    expect(statuses).toEqual(["SUCCEEDED", "FAILED", "CANCELLED", "SUCCEEDED", "SUCCEEDED"]);
    expect(sent.filter((statement) => statement.text?.includes('"Job"'))).toHaveLength(1);
  });

  it("subscribes the channels of all its jobs with one SSUBSCRIBE", async () => {
    const { key, projectId } = await t.createProject();
    const ids = await jobsOf(projectId, ["QUEUED", "QUEUED", "RUNNING", "QUEUED", "QUEUED"]);
    const channels = ids.map((id) => `${t.app.config.QUEUE_PREFIX}:events:job:${id}`);
    // Seen by Redis itself: other test files share the server, so only commands naming these channels count.
    const monitor = await t.app.redis.monitor();
    const subscribes: string[][] = [];
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (String(args[0]).toLowerCase() === "ssubscribe" && args.some((arg) => channels.includes(arg))) subscribes.push(args.slice(1));
    });
    try {
      const events = follow(key, ids);
      await take(events, 5);
      await events.return(undefined);
    } finally {
      monitor.disconnect();
    }
    expect(subscribes).toEqual([channels]);
  });
});
