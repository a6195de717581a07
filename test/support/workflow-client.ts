import { expect } from "vitest";
import { eventually, type TestApp } from "./test-app.ts";

const RUN_ENDED = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** Publishing and running workflows through GraphQL as one project's client, and waiting for a run's end. */
export function workflowClient(t: TestApp, key: string) {
  const client = {
    async publish(source: string) {
      const response = await t.graphql(`mutation ($d: String!) { publishWorkflow(definition: $d) { number } }`, { d: source }, key);
      expect(response.errors).toBeUndefined();
      return response.data.publishWorkflow.number as number;
    },
    /** Starts a run of the published workflow; returns its id. */
    async start(slug: string, input: unknown = {}) {
      const started = await t.graphql(`mutation ($slug: String!, $input: JSON) { runWorkflow(slug: $slug, input: $input) { id } }`, { slug, input }, key);
      expect(started.errors).toBeUndefined();
      return started.data.runWorkflow.id as string;
    },
    /** The run once it has ended, with its steps in the order they were made. */
    ended(runId: string, timeoutMs = 45_000) {
      return eventually(async () => {
        const run = await t.app.db.run.findUniqueOrThrow({ where: { id: runId }, include: { steps: { orderBy: { createdAt: "asc" } } } });
        return RUN_ENDED.has(run.status) ? run : null;
      }, timeoutMs);
    },
    async runToEnd(slug: string, input: unknown = {}, timeoutMs = 45_000) {
      return client.ended(await client.start(slug, input), timeoutMs);
    },
  };
  return client;
}
