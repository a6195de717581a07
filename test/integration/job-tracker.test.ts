import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { PROGRESS_FLUSH_MS, PROGRESS_ROW_INTERVAL_MS, JobTracker } from "../../services/worker/job-tracker.ts";
import { statementsOf } from "../support/pg-statements.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

/*
 * The tracker's writes are raw SQL (they run for every job), so they are checked against real rows:
 * which columns each call sets, what it publishes, and how a missing row is reported.
 */
let t: TestApp;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp();
  ({ projectId } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

async function newJob() {
  const job = await t.app.db.job.create({ data: { projectId, kind: "INGEST", input: {} } });
  const events: Array<{ status: string; progress: number; message?: string; error?: unknown }> = [];
  /** The tick each event was published in, numbered: the bus sends one tick's events of a job as one SPUBLISH. */
  const ticks: number[] = [];
  let tick = 0;
  let inTick = false;
  vi.spyOn(t.app.events, "publish").mockImplementation(((_topic: string, id: string, event: (typeof events)[number]) => {
    if (id !== job.id) return;
    if (!inTick) {
      tick++;
      inTick = true;
      queueMicrotask(() => (inTick = false));
    }
    events.push(event);
    ticks.push(tick);
  }) as never);
  return { job, events, ticks, tracker: new JobTracker(t.app, job.id), row: () => t.app.db.job.findUniqueOrThrow({ where: { id: job.id } }) };
}

/** A timestamp written by PostgreSQL must read back as the same instant the test saw (UTC, not the session's zone). */
function expectNow(value: Date | null, startedAt: number) {
  expect(value).toBeInstanceOf(Date);
  expect(value!.getTime()).toBeGreaterThanOrEqual(startedAt - 1000);
  expect(value!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
}

describe("JobTracker", () => {
  it("writes RUNNING and SUCCEEDED to the row, progress at most once per interval, and publishes every step", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const startedAt = Date.now();
    const { tracker, events, row } = await newJob();
    await tracker.started(2);
    for (const [index, stage] of ["verify-blob", "decode", "encode", "index"].entries()) await tracker.progress((index + 1) / 4, stage);
    // Quick stages: an event for each, after the RUNNING one; no progress written to the row yet (the RUNNING write just happened).
    await vi.waitFor(() => expect(events).toHaveLength(5), { timeout: 10_000 });
    expect(await row()).toMatchObject({ status: "RUNNING", attempts: 2, progress: 0, error: null });
    expectNow((await row()).updatedAt, startedAt);
    expect(events.map((event) => event.message)).toEqual(["attempt 2 started", "verify-blob", "decode", "encode", "index"]);
    expect(events.at(-1)!.progress).toBe(1);
    expect((await row()).progress).toBe(0);

    // A slow stage: its figure reaches the row.
    vi.setSystemTime(Date.now() + PROGRESS_ROW_INTERVAL_MS);
    await tracker.progress(0.5, "slow");
    expect((await row()).progress).toBe(0.5);

    vi.useRealTimers();
    await tracker.succeeded({ ok: true, items: [1, 2] }, { tokens: 7 });
    const done = await row();
    expect(done).toMatchObject({ status: "SUCCEEDED", progress: 1, output: { ok: true, items: [1, 2] }, usage: { tokens: 7 } });
    expectNow(done.finishedAt, startedAt);
    expect(events.at(-1)).toMatchObject({ status: "SUCCEEDED", progress: 1 });
  });

  it("holds a progress event up to PROGRESS_FLUSH_MS for the next event, so that both go out as one message; every event arrives, in order (issue #20)", async () => {
    const { tracker, events, ticks } = await newJob();
    await tracker.started(1);
    await vi.waitFor(() => expect(events).toHaveLength(1), { timeout: 10_000 });
    // An ingest's four stages end in four ticks (the blob's check, sharp, the model, the store), then its end.
    for (const [index, stage] of ["verify-blob", "decode", "encode", "index"].entries()) {
      await new Promise((resolve) => setImmediate(resolve));
      await tracker.progress((index + 1) / 4, stage);
    }
    await tracker.succeeded({});
    expect(events.map((event) => [event.status, event.message ?? null, event.progress])).toEqual([
      ["RUNNING", "attempt 1 started", 0],
      ["RUNNING", "verify-blob", 0.25],
      ["RUNNING", "decode", 0.5],
      ["RUNNING", "encode", 0.75],
      ["RUNNING", "index", 1],
      ["SUCCEEDED", null, 1],
    ]);
    // The stages' events and SUCCEEDED in one tick: one SPUBLISH where there were five.
    expect(new Set(ticks.slice(1)).size).toBe(1);

    // A progress event with nothing after it is not held longer than PROGRESS_FLUSH_MS.
    const slow = await newJob();
    await slow.tracker.started(1);
    await vi.waitFor(() => expect(slow.events).toHaveLength(1), { timeout: 10_000 });
    const at = performance.now();
    await slow.tracker.progress(0.5, "a long stage");
    await vi.waitFor(() => expect(slow.events).toHaveLength(2), { timeout: 10_000, interval: 5 });
    expect(performance.now() - at).toBeGreaterThanOrEqual(PROGRESS_FLUSH_MS - 5);
    expect(slow.events[1]).toMatchObject({ status: "RUNNING", message: "a long stage", progress: 0.5 });
    await slow.tracker.failed({ code: "INTERNAL", message: "x" }, true);
    expect(slow.events.map((event) => event.status)).toEqual(["RUNNING", "RUNNING", "FAILED"]);
  });

  it("a job without output stores NULL, and a retried attempt clears the previous error", async () => {
    const { tracker, row } = await newJob();
    await tracker.failed({ code: "MODEL_ERROR", message: "out of memory" }, false);
    expect(await row()).toMatchObject({ status: "QUEUED", error: { code: "MODEL_ERROR", message: "out of memory" }, finishedAt: null });
    await tracker.started(2);
    expect((await row()).error).toBeNull();
    await tracker.succeeded(undefined);
    expect(await row()).toMatchObject({ status: "SUCCEEDED", output: null, usage: null });
  });

  it("the last failure marks the job FAILED with its error and finish time, and publishes it", async () => {
    const startedAt = Date.now();
    const { tracker, row, events } = await newJob();
    await tracker.started(1);
    await tracker.failed({ code: "BAD_USER_INPUT", message: "not an image" }, true);
    const failed = await row();
    expect(failed).toMatchObject({ status: "FAILED", error: { code: "BAD_USER_INPUT", message: "not an image" } });
    expectNow(failed.finishedAt, startedAt);
    expect(events.at(-1)).toMatchObject({ status: "FAILED", error: { code: "BAD_USER_INPUT", message: "not an image" } });
  });

  it("a job row that is gone is NOT_FOUND, and nothing is published", async () => {
    const { job, tracker, events } = await newJob();
    await t.app.db.job.delete({ where: { id: job.id } });
    await tracker.started(1);
    await tracker.progress(0.5, "working on a job that is gone");
    await expect(tracker.succeeded({})).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(tracker.failed({ code: "INTERNAL", message: "x" }, true)).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(events).toEqual([]);
  });

  it("the handler runs while RUNNING commits; nothing is published before that commit, and then everything in order", async () => {
    const { job, tracker, events, row } = await newJob();
    // Hold the RUNNING write back, as a slow disk flush would: another session locks the row until released.
    const locker = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await locker.connect();
    await locker.query("BEGIN");
    await locker.query(`SELECT 1 FROM "Job" WHERE id = $1 FOR UPDATE`, [job.id]);
    const release = () => void locker.query("COMMIT").finally(() => locker.end());
    await tracker.started(1); // returns before the write is done
    await tracker.progress(0.05, "text started");
    tracker.token("Hello");
    await new Promise((resolve) => setTimeout(resolve, 100)); // past the token flush
    expect(events).toEqual([]);
    expect((await row()).status).toBe("QUEUED");
    const finishing = tracker.succeeded({ text: "Hello" }); // waits for the RUNNING write
    release();
    await finishing;
    expect(events.map((event) => [event.status, event.message ?? (event as { token?: string }).token ?? null])).toEqual([
      ["RUNNING", "attempt 1 started"],
      ["RUNNING", "text started"],
      ["RUNNING", "Hello"],
      ["SUCCEEDED", null],
    ]);
    expect((await row()).status).toBe("SUCCEEDED");
  });

  it("text still waiting for its flush when the job ends goes out with the end's status event, right before it (issue #20)", async () => {
    const { job, tracker, events } = await newJob();
    await tracker.started(1);
    await vi.waitFor(() => expect(events).toHaveLength(1), { timeout: 10_000 });
    // The end's write is held back (a slow commit) for longer than the token flush.
    const locker = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await locker.connect();
    await locker.query("BEGIN");
    await locker.query(`SELECT 1 FROM "Job" WHERE id = $1 FOR UPDATE`, [job.id]);
    tracker.token("Last ");
    tracker.token("words.");
    const finishing = tracker.succeeded({ text: "Last words." });
    await new Promise((resolve) => setTimeout(resolve, 100)); // past the token flush
    expect(events.map((event) => event.status)).toEqual(["RUNNING"]);
    await locker.query("COMMIT");
    await locker.end();
    await finishing;
    expect(events.map((event) => [event.status, (event as { token?: string }).token ?? null])).toEqual([
      ["RUNNING", null],
      ["RUNNING", "Last words."],
      ["SUCCEEDED", null],
    ]);
  });
});

describe("the tracker's statements", () => {
  // Every job writes its row at its start and its end: prepared, PostgreSQL parses and plans each text once per
  // connection instead of on every job (0.2 ms of its CPU per statement measured, bench/README.md, encode eighth round).
  it("are prepared, one name per text", async () => {
    const names = new Map<string, string>();
    for (const end of ["succeeded", "succeeded with usage", "retried", "failed"] as const) {
      const { tracker } = await newJob();
      const sent = await statementsOf(async () => {
        await tracker.started(1);
        if (end === "succeeded") await tracker.succeeded({ text: "done" });
        else if (end === "succeeded with usage") await tracker.succeeded({ text: "done" }, { inputTokens: 1 });
        else await tracker.failed({ code: "INTERNAL", message: "no" }, end === "failed");
      });
      expect(sent).toHaveLength(2);
      for (const statement of sent) {
        expect(statement.name).toMatch(/^tessera_job_/);
        expect(names.get(statement.name!) ?? statement.text).toBe(statement.text);
        names.set(statement.name!, statement.text!);
      }
    }
    expect(new Set(names.values()).size).toBe(names.size);
  });
});
