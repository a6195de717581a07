import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { postUpload } from "../../bench/fixtures/bench-graphql.ts";
import { jobEventsOverSse, startDeploymentProcesses, startProbedProcess } from "../../bench/fixtures/deployment-processes.ts";
import { putBytes } from "../../bench/fixtures/http-floor.ts";
import { createDatabase } from "../../services/core/database.ts";
import { makeJpegOfSize } from "../support/media-fixtures.ts";
import { TEST_DATABASE_URL, TEST_REDIS_URL } from "../support/test-env.ts";

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

  it("starts the gateway alone when asked (the ingest bench's shape): an upload is accepted there, no worker runs, nothing is left running", async () => {
    const processes = await startDeploymentProcesses({ processes: ["gateway"] });
    const pids = Object.values(processes.pids);
    const db = createDatabase(TEST_DATABASE_URL);
    const agent = new http.Agent({ keepAlive: true });
    try {
      expect(Object.keys(processes.pids)).toEqual(["gateway"]);
      expect(pids.every(running)).toBe(true);
      const { key, projectId } = await processes.createProject();
      await processes.mark();
      const mutation = `mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { id modality } job { id } } }`;
      const result = await postUpload(processes.graphqlUrl, agent, key, mutation, { bytes: await makeJpegOfSize(50_000, 1), filename: "a.jpg", mimeType: "image/jpeg" });
      expect(result.data?.ingest.asset.modality).toBe("IMAGE");
      const spent = await processes.read();
      expect(Object.keys(spent)).toEqual(["gateway"]);
      expect(spent.gateway.sql).toBeGreaterThanOrEqual(2);
      expect(spent.gateway.cpuMs).toBeGreaterThan(0);
      // No worker took the ingest job: it is still queued.
      const job = await db.job.findUniqueOrThrow({ where: { id: result.data.ingest.job.id } });
      expect(job.status).toBe("QUEUED");
      await processes.deleteProject(projectId);
      expect(await db.project.findUnique({ where: { id: projectId } })).toBeNull();
    } finally {
      agent.destroy();
      await db.$disconnect();
      await processes.close();
    }
    expect(pids.filter(running)).toEqual([]);
  });

  it("runs the bare HTTP floor in a process of its own: a body is stored there, its CPU is read, it stops on close", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-floor-test-"));
    const floor = await startProbedProcess("floor", "http-floor-process.ts", { BENCH_FLOOR_DIR: dir });
    const agent = new http.Agent({ keepAlive: true });
    try {
      expect(floor.pid).not.toBe(process.pid);
      expect(running(floor.pid)).toBe(true);
      await floor.mark();
      const bytes = await makeJpegOfSize(50_000, 2);
      await putBytes(floor.url, agent, bytes);
      expect((await floor.read()).cpuMs).toBeGreaterThan(0);
      const stored = (await fs.readdir(dir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
      const sizes = await Promise.all(stored.map((entry) => fs.stat(path.join(entry.parentPath, entry.name)).then((stat) => stat.size)));
      expect(sizes).toContain(bytes.length);
    } finally {
      agent.destroy();
      await floor.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
    expect(running(floor.pid)).toBe(false);
  });

  it("runs the generate stack floor's gateway and worker as processes: the job's row ends SUCCEEDED with the model's text, its events end with SUCCEEDED, both stop on close", async () => {
    const db = createDatabase(TEST_DATABASE_URL);
    const project = await db.project.create({ data: { name: `floor-test-${randomUUID()}` } });
    const model = await startProbedProcess("model", "fake-model-server-process.ts", { BENCH_TOKENS: "4" });
    const env = {
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      BENCH_FLOOR_PREFIX: `test-floor-${randomUUID().slice(0, 8)}`,
      BENCH_FLOOR_PROJECT: project.id,
      BENCH_FLOOR_MODEL_URL: model.url,
      BENCH_FLOOR_CONCURRENCY: "2",
    };
    const started = [model];
    try {
      const gateway = await startProbedProcess("floor-gateway", "generate-floor-process.ts", { ...env, BENCH_FLOOR_ROLE: "gateway" });
      started.push(gateway);
      const worker = await startProbedProcess("floor-worker", "generate-floor-process.ts", { ...env, BENCH_FLOOR_ROLE: "worker" });
      started.push(worker);
      await worker.mark();
      const response = await fetch(gateway.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: `mutation { generate(input: { prompt: "Say four words." }) { id } }` }),
      });
      const id = ((await response.json()) as { data: { generate: { id: string } } }).data.generate.id;
      const statuses = [];
      for await (const event of jobEventsOverSse(gateway.url, "", id)) statuses.push(event.status);
      expect(statuses.at(-1)).toBe("SUCCEEDED");
      const row = await db.job.findUniqueOrThrow({ where: { id } });
      expect(row).toMatchObject({ projectId: project.id, kind: "GENERATE", status: "SUCCEEDED", output: { text: "word0 word1 word2 word3" } });
      // The RUNNING and SUCCEEDED writes came from the worker process.
      expect((await worker.read()).sql).toBe(2);
    } finally {
      await Promise.all(started.map((child) => child.close()));
      await db.project.delete({ where: { id: project.id } });
      await db.$disconnect();
    }
    expect(started.map((child) => child.pid).filter(running)).toEqual([]);
  });
});
