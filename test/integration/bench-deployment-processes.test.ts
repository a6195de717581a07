import { describe, expect, it } from "vitest";
import { jobEventsOverSse, startDeploymentProcesses } from "../../bench/fixtures/deployment-processes.ts";
import { createDatabase } from "../../services/core/database.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

/** True while a process with this id exists (signal 0 only checks). */
function running(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the generation bench's deployment shape (bench/fixtures/deployment-processes.ts)", () => {
  it("runs a generate job submitted to the gateway process in the worker process, and leaves no process running", async () => {
    const processes = await startDeploymentProcesses({ workerConcurrency: 2, tokens: 4 });
    const pids = Object.values(processes.pids);
    const db = createDatabase(TEST_DATABASE_URL);
    try {
      expect(new Set([process.pid, ...pids]).size).toBe(4);
      expect(pids.every(running)).toBe(true);
      const { key } = await processes.createProject();
      await processes.mark();
      const response = await fetch(processes.graphqlUrl, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ query: `mutation { generate(input: { task: TEXT, prompt: "Say four words." }) { id } }` }),
      });
      const id = ((await response.json()) as { data: { generate: { id: string } } }).data.generate.id;
      const events = [];
      for await (const event of jobEventsOverSse(processes.graphqlUrl, key, id)) events.push(event);
      expect(events.at(-1)?.status).toBe("SUCCEEDED");
      expect(events.flatMap((event) => (event.token ? [event.token] : [])).join("")).toBe("word0 word1 word2 word3");
      const row = await db.job.findUniqueOrThrow({ where: { id } });
      expect(row.status).toBe("SUCCEEDED");
      // The gateway has no worker: the job's RUNNING and end writes came from the worker process, the model call too.
      const spent = await processes.read();
      expect(spent.worker.sql).toBeGreaterThanOrEqual(2);
      expect(spent.worker.redis).toBeGreaterThan(0);
      expect(spent.gateway.sql).toBeGreaterThan(0);
      expect(spent.model.cpuMs).toBeGreaterThan(0);
    } finally {
      await db.$disconnect();
      await processes.close();
    }
    expect(pids.filter(running)).toEqual([]);
  });
});
