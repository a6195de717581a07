import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statementsOf } from "../support/pg-statements.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const subscription = `subscription ($id: ID!) { jobEvents(id: $id) { jobId status progress } }`;

async function ingestText(key: string) {
  const response = await t.graphql(
    `mutation ($text: String!) { ingest(input: { text: $text }) { job { id } } }`,
    { text: `events ${Math.random()}` },
    key,
  );
  return response.data.ingest.job.id as string;
}

/** Reads a text/event-stream response until it completes; returns each `next` payload. */
async function readSse(response: Response) {
  const payloads: any[] = [];
  const text = await response.text(); // the stream ends when the job does
  for (const block of text.split("\n\n")) {
    const lines = block.split("\n");
    if (lines.includes("event: next")) {
      const data = lines.find((line) => line.startsWith("data: "));
      if (data) payloads.push(JSON.parse(data.slice(6)));
    }
  }
  return payloads;
}

describe("jobEvents", () => {
  it("streams a job to its end over SSE", async () => {
    const { key } = await t.createProject();
    const jobId = await ingestText(key);
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: subscription, variables: { id: jobId } }),
    });
    const events = await readSse(response);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((event) => event.data.jobEvents.jobId === jobId)).toBe(true);
    expect(events.at(-1).data.jobEvents).toMatchObject({ status: "SUCCEEDED", progress: 1 });
  });

  it("streams over graphql-ws with the key in connectionParams", async () => {
    const { key } = await t.createProject();
    const jobId = await ingestText(key);
    const client = createClient({
      url: t.url.replace("http", "ws"),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${key}` },
    });
    try {
      const statuses: string[] = [];
      for await (const result of client.iterate<{ jobEvents: { status: string } }>({ query: subscription, variables: { id: jobId } })) {
        expect(result.errors).toBeUndefined();
        statuses.push(result.data!.jobEvents.status);
      }
      expect(statuses.at(-1)).toBe("SUCCEEDED");
    } finally {
      await client.dispose();
    }
  });

  it("refuses another project's job", async () => {
    const a = await t.createProject();
    const b = await t.createProject();
    const jobId = await ingestText(a.key);
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${b.key}` },
      body: JSON.stringify({ query: subscription, variables: { id: jobId } }),
    });
    const text = await response.text();
    expect(text).toContain("NOT_FOUND");
    expect(text).not.toContain('"status"');
  });

  it("reads its job once before the first event: the watch's own read is the project check", async () => {
    const { key } = await t.createProject();
    const jobId = await ingestText(key);
    await eventually(async () => ((await t.app.db.job.findUniqueOrThrow({ where: { id: jobId } })).status === "SUCCEEDED" ? true : null));
    let events: any[] = [];
    const sent = await statementsOf(async () => {
      const response = await fetch(t.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream", authorization: `Bearer ${key}` },
        body: JSON.stringify({ query: subscription, variables: { id: jobId } }),
      });
      events = await readSse(response);
    });
    expect(events.map((event) => event.data.jobEvents.status)).toEqual(["SUCCEEDED"]);
    expect(sent.filter((statement) => statement.text?.includes('"Job"'))).toHaveLength(1);
  });
});
