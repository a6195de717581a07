import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { readRun, advancePlanned, finishMapItems } from "../../workflows/engine/run-store.ts";
import { publishWorkflow } from "../../workflows/engine/run-service.ts";
import { planRun } from "../../workflows/engine/run-planner.ts";
import { parseWorkflow } from "../../workflows/dsl/validate-workflow.ts";
import { registerStepType } from "../../workflows/steps/step-registry.ts";
import { defineStepType } from "../../workflows/steps/step-type.ts";
import { statementsOf } from "../support/pg-statements.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

// The engine's transitions written as one statement each (issue #20): a map's item finishing (its end, the next items
// fed within the map's concurrency, whether the map is done) and an advance planned without locks, written only when
// the run is still as planned. These race them against each other on separate connections: a stale read would queue
// an item twice, exceed the concurrency, miss the map's end, or write a plan over a change it did not see.

registerStepType(
  defineStepType({
    uses: "test.echo",
    description: "returns its input, through a job",
    with: z.record(z.string(), z.unknown()),
    output: z.record(z.string(), z.unknown()),
    async run(input) {
      return input;
    },
  }),
);

/** Counts the statements sent through node-postgres while `work` runs that `matches` picks out by text or values. */
async function countStatements(matches: (text: string | undefined, values: unknown[] | undefined) => boolean, work: () => Promise<unknown>): Promise<number> {
  return (await statementsOf(work)).filter((statement) => matches(statement.text, statement.values)).length;
}

/** Runs of each input's `v` by test.counted, to see a step run once however many jobs ask for it. */
const countedRuns = new Map<string, number>();
registerStepType(
  defineStepType({
    uses: "test.counted",
    description: "returns its input and counts its runs",
    with: z.record(z.string(), z.unknown()),
    output: z.record(z.string(), z.unknown()),
    async run(input) {
      const key = String((input as { v?: unknown }).v);
      countedRuns.set(key, (countedRuns.get(key) ?? 0) + 1);
      return input;
    },
  }),
);

let t: TestApp;
let projectId: string;
beforeAll(async () => {
  t = await startTestApp({ worker: { concurrency: 8 } });
  ({ projectId } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** A run stored by hand: a RUNNING map of `width` items, the first `running` RUNNING, the rest PENDING. */
async function runWithMap(width: number, running: number, concurrency: number, uses = "test.echo") {
  const slug = unique("map-rows");
  const version = await publishWorkflow(
    t.app,
    projectId,
    `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug}\nsteps:\n  - id: each\n    uses: map\n    with:\n      items: [1]\n      concurrency: ${concurrency}\n      step: { uses: ${uses}, with: { v: 1 } }\n`,
  );
  const runId = randomUUID();
  const mapId = randomUUID();
  await t.app.db.run.create({ data: { id: runId, projectId, workflowVersionId: version.id, status: "RUNNING" } });
  await t.app.db.stepRun.create({ data: { id: mapId, runId, stepId: "each", key: "each", status: "RUNNING", input: { concurrency, items: [], step: { uses } } } });
  await t.app.db.stepRun.createMany({
    data: Array.from({ length: width }, (_, index) => ({ id: randomUUID(), runId, stepId: "each", key: `each[${index}]`, parentId: mapId, status: index < running ? ("RUNNING" as const) : ("PENDING" as const), input: { v: index } })),
  });
  return { runId, mapId, versionId: version.id };
}

describe("a map's item finishing in one statement", () => {
  it("feeds each item once, never past the concurrency, and exactly one finisher sees the map done", async () => {
    const width = 40;
    const concurrency = 6;
    const { runId, mapId } = await runWithMap(width, concurrency, concurrency);
    let running = (await t.app.db.stepRun.findMany({ where: { parentId: mapId, status: "RUNNING" } })).map((row) => row.id);
    const queuedKeys: string[] = [];
    let dones = 0;
    let most = 0;
    while (running.length) {
      // Every running item finishes at once, each on its own connection.
      const results = await Promise.all(running.map((id) => finishMapItems(t.app.db, { runId, mapId, items: [{ stepRunId: id, output: { id } }] })));
      expect(results.every((result, index) => result.finished.length === 1 && result.finished[0] === running[index])).toBe(true);
      dones += results.filter((result) => result.done).length;
      const queued = results.flatMap((result) => result.queued);
      queuedKeys.push(...queued.map((row) => row.key));
      // What the claims of the queued items' jobs do.
      await t.app.db.stepRun.updateMany({ where: { id: { in: queued.map((row) => row.id) } }, data: { status: "RUNNING" } });
      const active = await t.app.db.stepRun.count({ where: { parentId: mapId, status: { in: ["QUEUED", "RUNNING"] } } });
      most = Math.max(most, active);
      running = queued.map((row) => row.id);
    }
    expect(new Set(queuedKeys).size).toBe(queuedKeys.length);
    expect(queuedKeys).toHaveLength(width - concurrency);
    expect(most).toBeLessThanOrEqual(concurrency);
    expect(dones).toBe(1);
    const items = await t.app.db.stepRun.findMany({ where: { parentId: mapId } });
    expect(items.every((row) => row.status === "SUCCEEDED" && (row.output as { id: string }).id === row.id)).toBe(true);
  });

  it("does not finish an item that is no longer RUNNING (a cancel wins), and says the map is done once it stopped", async () => {
    const { runId, mapId } = await runWithMap(3, 3, 3);
    const [first] = await t.app.db.stepRun.findMany({ where: { parentId: mapId }, orderBy: { key: "asc" } });
    await t.app.db.stepRun.updateMany({ where: { runId }, data: { status: "CANCELLED" } });
    const result = await finishMapItems(t.app.db, { runId, mapId, items: [{ stepRunId: first!.id, output: {} }] });
    expect(result).toEqual({ finished: [], done: true, queued: [] });
    expect((await t.app.db.stepRun.findUniqueOrThrow({ where: { id: first!.id } })).status).toBe("CANCELLED");
  });
});

describe("items of one map ending together (group commit)", () => {
  it("are stored by one statement, each settled after it, and the map's end advances the run once", async () => {
    const { runId, mapId, versionId } = await runWithMap(5, 5, 5);
    const items = await t.app.db.stepRun.findMany({ where: { parentId: mapId }, orderBy: { key: "asc" } });
    const { finishItem } = await import("../../workflows/engine/run-coordinator.ts");
    const settled: string[] = [];
    const run = { id: runId, projectId, workflowVersionId: versionId };
    const mapRow = { id: mapId, input: { concurrency: 5 } };
    // Every item ends in the same turn, as items run by one worker's slots do.
    const finishes = await countStatements(
      (text) => Boolean(text?.includes("tessera_finish_map_item")),
      () =>
        Promise.all(
          items.map((item) =>
            finishItem(t.app, run, mapRow, { stepRunId: item.id, output: { v: (item.input as { v: number }).v * 10 }, stepId: "each", key: item.key }).then(async () => {
              // Settled only once its end is committed.
              expect((await t.app.db.stepRun.findUniqueOrThrow({ where: { id: item.id } })).status).toBe("SUCCEEDED");
              settled.push(item.key);
            }),
          ),
        ),
    );
    expect(finishes).toBe(1);
    expect(settled).toHaveLength(5);
    const ended = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: runId } });
      return row.status === "SUCCEEDED" || row.status === "FAILED" ? row : null;
    }, 30_000);
    expect(ended.status).toBe("SUCCEEDED");
    const map = await t.app.db.stepRun.findUniqueOrThrow({ where: { id: mapId } });
    expect((map.output as { results: { v: number }[] }).results.map((result) => result.v)).toEqual([0, 10, 20, 30, 40]);
  });
});

describe("steps claimed together", () => {
  it("claims the steps of one turn in one statement, and a row asked for twice runs once", async () => {
    const { runId, mapId } = await runWithMap(5, 0, 5, "test.counted");
    const tag = randomUUID();
    const items = await t.app.db.stepRun.findMany({ where: { parentId: mapId }, orderBy: { key: "asc" } });
    for (const item of items) await t.app.db.stepRun.update({ where: { id: item.id }, data: { status: "QUEUED", input: { v: `${tag}-${item.key}` } } });
    const { executeStep } = await import("../../workflows/engine/step-executor.ts");
    // Five jobs handed over in one turn, and the first item's job delivered twice.
    const jobs = [...items, items[0]!].map((item) => ({ runId, stepRunId: item.id, projectId }));
    const claims = await countStatements(
      (text) => Boolean(text?.includes("claimed AS (")),
      () => Promise.all(jobs.map((job) => executeStep(t.app, job, 1, t.app.logger))),
    );
    // One statement for the five, one more for the first item asked for again.
    expect(claims).toBe(2);
    for (const item of items) expect(countedRuns.get(`${tag}-${item.key}`)).toBe(1);
    const ended = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: runId } });
      return row.status === "SUCCEEDED" || row.status === "FAILED" ? row : null;
    }, 30_000);
    expect(ended.status).toBe("SUCCEEDED");
    const rows = await t.app.db.stepRun.findMany({ where: { parentId: mapId } });
    expect(rows.every((row) => row.status === "SUCCEEDED" && row.attempts === 1)).toBe(true);
  });
});

describe("an advance planned without locks, in one statement", () => {
  const diamond = (slug: string) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
steps:
  - id: a
    uses: test.echo
    with: { n: 1 }
  - id: b
    uses: test.echo
    with: { n: 2 }
  - id: c
    uses: test.echo
    needs: [a, b]
    with: { n: "\${{ steps.a.output.n + steps.b.output.n }}" }
outputs:
  n: "\${{ steps.c.output.n }}"
`;

  it("writes nothing of a plan made from a stale read, but stores the finished step's end", async () => {
    const slug = unique("stale");
    const source = diamond(slug);
    const version = await publishWorkflow(t.app, projectId, source);
    const runId = randomUUID();
    const ids = { a: randomUUID(), b: randomUUID(), c: randomUUID() };
    await t.app.db.run.create({ data: { id: runId, projectId, workflowVersionId: version.id, status: "RUNNING" } });
    await t.app.db.stepRun.createMany({
      data: [
        { id: ids.a, runId, stepId: "a", key: "a", status: "RUNNING", input: { n: 1 } },
        { id: ids.b, runId, stepId: "b", key: "b", status: "RUNNING", input: { n: 2 } },
        { id: ids.c, runId, stepId: "c", key: "c", status: "PENDING" },
      ],
    });
    // The plan of a's end reads b SUCCEEDED (so it readies c), but b's end was never stored: the read is stale.
    const snapshot = (await readRun(t.app.db, runId))!;
    const seen = snapshot.steps.map((row) => (row.id === ids.a ? { ...row, status: "SUCCEEDED" as const, output: { n: 1 } } : row.id === ids.b ? { ...row, status: "SUCCEEDED" as const, output: { n: 2 } } : row));
    const plan = await planRun({ definition: parseWorkflow(source), run: snapshot, rows: seen, maxValueBytes: 1_000_000 });
    expect(plan.queued.map((row) => row.key)).toEqual(["c"]);
    const written = await advancePlanned(t.app.db, runId, { run: snapshot.status, rows: seen }, plan, { stepRunId: ids.a, output: { n: 1 } });
    expect(written).toEqual({ found: true, finishedNow: true, applied: false });
    const rows = await t.app.db.stepRun.findMany({ where: { runId } });
    expect(Object.fromEntries(rows.map((row) => [row.key, row.status]))).toEqual({ a: "SUCCEEDED", b: "RUNNING", c: "PENDING" });
  });

  it("joins parallel steps that finish at the same moment: every run ends without a reconciler", async () => {
    const slug = unique("diamond");
    await publishWorkflow(t.app, projectId, diamond(slug));
    const { startRun } = await import("../../workflows/engine/run-service.ts");
    const runs = await Promise.all(Array.from({ length: 12 }, () => startRun(t.app, { projectId, slug, input: {} })));
    const ended = await eventually(async () => {
      const rows = await t.app.db.run.findMany({ where: { id: { in: runs.map((run) => run.id) } } });
      return rows.every((row) => row.status === "SUCCEEDED" || row.status === "FAILED") ? rows : null;
    }, 30_000);
    expect(ended.map((row) => [row.status, row.output])).toEqual(ended.map(() => ["SUCCEEDED", { n: 3 }]));
    const steps = await t.app.db.stepRun.findMany({ where: { runId: { in: runs.map((run) => run.id) } } });
    expect(steps.every((row) => row.status === "SUCCEEDED" && row.attempts === 1)).toBe(true);
  });

  it("runs a map of queued steps, narrower than its items, to the end with results in item order", async () => {
    const slug = unique("queued-map");
    await publishWorkflow(
      t.app,
      projectId,
      `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug}\nsteps:\n  - id: each\n    uses: map\n    with:\n      items: "\${{ [1..30] }}"\n      concurrency: 4\n      step: { uses: test.echo, with: { v: "\${{ item * 2 }}" } }\n  - id: after\n    uses: test.echo\n    needs: [each]\n    with: { count: "\${{ $count(steps.each.output.results) }}" }\noutputs:\n  values: "\${{ steps.each.output.results.v }}"\n  count: "\${{ steps.after.output.count }}"\n`,
    );
    const { startRun } = await import("../../workflows/engine/run-service.ts");
    const run = await startRun(t.app, { projectId, slug, input: {} });
    const ended = await eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: run.id } });
      return row.status === "SUCCEEDED" || row.status === "FAILED" ? row : null;
    }, 30_000);
    expect(ended.status).toBe("SUCCEEDED");
    expect(ended.output).toEqual({ values: Array.from({ length: 30 }, (_, index) => (index + 1) * 2), count: 30 });
  });
});

describe("a map's end, once its last item has ended", () => {
  /** A run stored as the last item's finish leaves it: every item SUCCEEDED, the map still RUNNING, `after` PENDING. */
  async function mapJustDone(workflowVersionId: string) {
    const runId = randomUUID();
    const mapId = randomUUID();
    await t.app.db.run.create({ data: { id: runId, projectId, workflowVersionId, status: "RUNNING" } });
    await t.app.db.stepRun.createMany({
      data: [
        { id: mapId, runId, stepId: "each", key: "each", status: "RUNNING", input: { concurrency: 3, items: [1, 2, 3], step: { uses: "test.echo" } } },
        { id: randomUUID(), runId, stepId: "after", key: "after", status: "PENDING" },
        ...[0, 1, 2].map((index) => ({ id: randomUUID(), runId, stepId: "each", key: `each[${index}]`, parentId: mapId, status: "SUCCEEDED" as const, input: { v: index }, output: { v: index * 10 } })),
      ],
    });
    return runId;
  }
  const ended = (runId: string) =>
    eventually(async () => {
      const row = await t.app.db.run.findUniqueOrThrow({ where: { id: runId } });
      return row.status === "SUCCEEDED" || row.status === "FAILED" ? row : null;
    }, 30_000);

  it("is planned without locks and written in one statement, and advances racing it end the map once", async () => {
    const slug = unique("map-end");
    const version = await publishWorkflow(
      t.app,
      projectId,
      `apiVersion: tessera/v1\nkind: Workflow\nslug: ${slug}\nsteps:\n  - id: each\n    uses: map\n    with:\n      items: [1, 2, 3]\n      concurrency: 3\n      step: { uses: test.echo, with: { v: 1 } }\n  - id: after\n    uses: test.echo\n    needs: [each]\n    with: { count: "\${{ $count(steps.each.output.results) }}" }\noutputs:\n  values: "\${{ steps.each.output.results.v }}"\n  count: "\${{ steps.after.output.count }}"\n`,
    );
    const { advanceRun } = await import("../../workflows/engine/run-coordinator.ts");

    // One advance: the statements that name the run, the unlocked read and the write (the locked path sends four:
    // it locks the run, reads its rows and writes after the read, besides locking the map and reading its items).
    const alone = await mapJustDone(version.id);
    const naming = await countStatements((_text, values) => Boolean(values?.includes(alone)), () => advanceRun(t.app, alone));
    expect(naming).toBe(2);

    // Three advances at once: one writes its plan, the others find the map ended and ready nothing again.
    const raced = await mapJustDone(version.id);
    await Promise.all([advanceRun(t.app, raced), advanceRun(t.app, raced), advanceRun(t.app, raced)]);

    for (const runId of [alone, raced]) {
      const run = await ended(runId);
      expect(run.status).toBe("SUCCEEDED");
      expect(run.output).toEqual({ values: [0, 10, 20], count: 3 });
      const rows = await t.app.db.stepRun.findMany({ where: { runId, parentId: null } });
      expect(Object.fromEntries(rows.map((row) => [row.key, [row.status, row.attempts]]))).toEqual({ each: ["SUCCEEDED", 0], after: ["SUCCEEDED", 1] });
    }
  });
});
