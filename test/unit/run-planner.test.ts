import { describe, expect, it } from "vitest";
import type { Run } from "../../services/core/database.ts";
import { parseWorkflow } from "../../workflows/dsl/validate-workflow.ts";
import { mapsToCollect, planRun, type StepState } from "../../workflows/engine/run-planner.ts";

// The planner is pure: these tests hand it a definition and rows, and read its decisions. No database, no Redis.

const header = `apiVersion: tessera/v1
kind: Workflow
slug: demo
`;

type Row = StepState;

function row(key: string, status: Row["status"] = "PENDING", fields: Partial<Row> = {}): Row {
  const stepId = key.replace(/\[\d+\]$/, "");
  return { id: `id-${key}`, stepId, key, parentId: null, status, input: null, output: null, error: null, ...fields };
}

function item(map: Row, index: number, status: Row["status"] = "PENDING", fields: Partial<Row> = {}): Row {
  return row(`${map.key}[${index}]`, status, { stepId: map.stepId, parentId: map.id, input: { v: index }, ...fields });
}

function plan(yaml: string, rows: Row[], options: { status?: Run["status"]; input?: unknown; maxValueBytes?: number; requeue?: boolean; inline?: boolean } = {}) {
  return planRun({
    definition: parseWorkflow(`${header}${yaml}`),
    run: { id: "run-1", status: options.status ?? "RUNNING", input: options.input ?? {} },
    rows,
    maxValueBytes: options.maxValueBytes ?? 4 * 1024 * 1024,
    requeue: options.requeue,
    inline: options.inline,
  });
}

const statuses = (rows: Row[]) => Object.fromEntries(rows.map((entry) => [entry.key, entry.status]));
const keys = (rows: Row[]) => rows.map((entry) => entry.key);

const chain = `inputs:
  name: { type: string }
steps:
  - id: a
    uses: transform
    with: { text: "hi \${{ inputs.name }}" }
  - id: b
    uses: transform
    with: { text: "\${{ steps.a.output.text }}!" }
outputs:
  text: "\${{ steps.b.output.text }}"
`;

describe("run planner: dependencies", () => {
  it("starts a queued run and queues only the steps whose dependencies are done, with their evaluated input", async () => {
    const result = await plan(chain, [row("a"), row("b")], { status: "QUEUED", input: { name: "Ada" } });
    expect(result.started).toBe(true);
    expect(result.transition).toBeUndefined();
    expect(keys(result.queued)).toEqual(["a"]);
    expect(result.changes.get("id-a")).toEqual({ status: "QUEUED", input: { text: "hi Ada" } });
    expect(result.changes.has("id-b")).toBe(false);
    expect(result.events).toEqual([{ runId: "run-1", type: "RUN_STATUS", status: "RUNNING" }]);
  });

  it("queues a step once what it reads has succeeded", async () => {
    const result = await plan(chain, [row("a", "SUCCEEDED", { output: { text: "hi Ada" } }), row("b")]);
    expect(result.started).toBe(false);
    expect(keys(result.queued)).toEqual(["b"]);
    expect(result.changes.get("id-b")).toEqual({ status: "QUEUED", input: { text: "hi Ada!" } });
  });

  it("leaves a run alone while its steps run", async () => {
    const result = await plan(chain, [row("a", "RUNNING"), row("b")]);
    expect(result.changes.size).toBe(0);
    expect(result.queued).toEqual([]);
    expect(result.events).toEqual([]);
    expect(result.transition).toBeUndefined();
  });

  it("queues rows left QUEUED again only on a repair pass", async () => {
    const rows = [row("a", "QUEUED", { input: { text: "hi" } }), row("b")];
    expect((await plan(chain, rows)).queued).toEqual([]);
    expect(keys((await plan(chain, rows, { requeue: true })).queued)).toEqual(["a"]);
  });
});

describe("run planner: if", () => {
  const branches = `steps:
  - id: check
    uses: transform
    with: { ok: false }
  - id: expensive
    uses: transform
    if: "\${{ steps.check.output.ok }}"
    with: { done: true }
  - id: after
    uses: transform
    needs: [expensive]
    with: { done: true }
  - id: never
    uses: transform
    if: false
    with: {}
outputs:
  ran: "\${{ steps.expensive.status }}"
`;

  it("skips a step whose condition is false, and what needs it becomes ready in the same pass", async () => {
    const result = await plan(branches, [row("check", "SUCCEEDED", { output: { ok: false } }), row("expensive"), row("after"), row("never")]);
    expect(statuses(result.rows)).toEqual({ check: "SUCCEEDED", expensive: "SKIPPED", after: "QUEUED", never: "SKIPPED" });
    expect(result.changes.get("id-expensive")).toEqual({ status: "SKIPPED", finished: true });
    expect(keys(result.queued)).toEqual(["after"]);
    expect(result.events.filter((event) => event.type === "STEP_SKIPPED").map((event) => event.stepKey)).toEqual(["expensive", "never"]);
  });

  it("runs a step whose condition is true", async () => {
    const result = await plan(branches, [row("check", "SUCCEEDED", { output: { ok: true } }), row("expensive"), row("after"), row("never", "SKIPPED")]);
    expect(keys(result.queued)).toEqual(["expensive"]);
  });

  it("finishes with the outputs evaluated once every step is done or skipped", async () => {
    const result = await plan(branches, [
      row("check", "SUCCEEDED", { output: { ok: false } }),
      row("expensive", "SKIPPED"),
      row("after", "SUCCEEDED", { output: { done: true } }),
      row("never", "SKIPPED"),
    ]);
    expect(result.transition).toEqual({ status: "SUCCEEDED", output: { ran: "SKIPPED" }, error: null });
    expect(result.events.at(-1)).toEqual({ runId: "run-1", type: "RUN_STATUS", status: "SUCCEEDED", output: { ran: "SKIPPED" }, error: null });
  });
});

describe("run planner: failures", () => {
  const wide = `inputs:
  list: { type: array }
  text: { type: string }
steps:
  - id: fanout
    uses: map
    with: { items: "\${{ inputs.list }}", step: { uses: transform, with: { v: "\${{ item }}" } } }
  - id: other
    uses: transform
    with: { big: "\${{ inputs.text }}" }
  - id: last
    uses: transform
    needs: [fanout, other]
    with: {}
`;

  it("fails a step whose input does not fit its type, fails the run, and cancels the open steps", async () => {
    const rows = [row("fanout"), row("other"), row("last"), row("slow", "RUNNING", { stepId: "other" })];
    const result = await plan(wide, rows, { input: { list: "not a list", text: "x" } });
    const failed = result.changes.get("id-fanout");
    expect(failed).toMatchObject({ status: "FAILED", finished: true, error: { code: "BAD_USER_INPUT" } });
    expect(failed?.error?.message).toMatch(/^step "fanout" got input that does not fit map: items: /);
    expect(result.transition).toMatchObject({ status: "FAILED", output: null, error: { code: "BAD_USER_INPUT", details: { stepId: "fanout" } } });
    expect(result.transition?.status === "FAILED" && result.transition.error.message).toMatch(/^step "fanout" failed: step "fanout" got input/);
    // `other` was ready too, but the run failed in the same pass: it is cancelled, not queued.
    expect(statuses(result.rows)).toMatchObject({ fanout: "FAILED", other: "CANCELLED", last: "CANCELLED", slow: "CANCELLED" });
    expect(result.queued).toEqual([]);
    expect(keys(result.cancelled).sort()).toEqual(["last", "other", "slow"]);
    expect(result.events.map((event) => event.type)).toEqual(["STEP_FAILED", "RUN_STATUS"]);
  });

  it("fails a step whose input is over the size limit", async () => {
    const result = await plan(wide, [row("fanout", "RUNNING"), row("other"), row("last")], { input: { list: [], text: "x".repeat(200) }, maxValueBytes: 100 });
    expect(result.changes.get("id-other")).toMatchObject({
      status: "FAILED",
      error: { code: "PAYLOAD_TOO_LARGE", message: expect.stringMatching(/^step "other" input is \d+ bytes as JSON; the limit is 100$/) },
    });
    expect(result.transition?.status).toBe("FAILED");
  });

  it("fails a step whose expression cannot be evaluated as bad input", async () => {
    const result = await plan(`steps:
  - id: a
    uses: transform
    with: { v: "\${{ $error('no') }}" }
`, [row("a")]);
    expect(result.changes.get("id-a")).toMatchObject({ status: "FAILED", error: { code: "BAD_USER_INPUT" } });
  });

  it("fails the run when a step was cancelled", async () => {
    const result = await plan(chain, [row("a", "CANCELLED"), row("b")]);
    expect(result.transition).toEqual({
      status: "FAILED",
      output: null,
      error: { code: "CANCELLED", message: 'step "a" failed: cancelled', details: { stepId: "a" } },
    });
    expect(keys(result.cancelled)).toEqual(["b"]);
  });

  it("fails the run when the outputs cannot be evaluated", async () => {
    const result = await plan(`steps:
  - id: a
    uses: transform
    with: {}
outputs:
  broken: "\${{ $error('nope') }}"
`, [row("a", "SUCCEEDED", { output: {} })]);
    expect(result.transition).toMatchObject({ status: "FAILED", error: { code: "BAD_USER_INPUT", message: expect.stringMatching(/^outputs: /) } });
  });
});

describe("run planner: maps", () => {
  const mapped = `steps:
  - id: each
    uses: map
    with: { items: [1, 2, 3], concurrency: 2, step: { uses: transform, with: { v: "\${{ item }}" } } }
outputs:
  results: "\${{ steps.each.output.results }}"
`;
  const mapRow = (items: unknown[], concurrency = 2) =>
    row("each", "RUNNING", { input: { items, concurrency, step: { uses: "transform", with: { v: "${{ item }}" } } } as Row["input"] });

  it("queues a new map with its template left for the items to evaluate", async () => {
    const result = await plan(mapped, [row("each")]);
    expect(result.changes.get("id-each")).toEqual({
      status: "QUEUED",
      input: { items: [1, 2, 3], concurrency: 2, step: { uses: "transform", with: { v: "${{ item }}" } } },
    });
  });

  it("feeds items in item order within the map's concurrency", async () => {
    const map = mapRow(Array.from({ length: 12 }, (_, index) => index), 3);
    // Keys sort as text ([10] before [2]); items must go by number.
    const items = [10, 11, 2, 0, 1, 3].map((index) => item(map, index, index === 0 ? "RUNNING" : "PENDING"));
    const result = await plan(mapped, [map, ...items]);
    expect(keys(result.queued)).toEqual(["each[1]", "each[2]"]);
    expect(result.changes.get("id-each[1]")).toEqual({ status: "QUEUED" });
    expect(result.transition).toBeUndefined();
  });

  it("feeds nothing while the map is at its concurrency", async () => {
    const map = mapRow([0, 1, 2]);
    const result = await plan(mapped, [map, item(map, 0, "RUNNING"), item(map, 1, "WAITING"), item(map, 2)]);
    expect(result.queued).toEqual([]);
  });

  it("finishes a map with its items' outputs in item order, then the run", async () => {
    const map = mapRow(Array.from({ length: 11 }, (_, index) => index));
    const items = [10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9].map((index) => item(map, index, index === 5 ? "SKIPPED" : "SUCCEEDED", { output: index === 5 ? null : { v: index } }));
    const result = await plan(mapped, [map, ...items]);
    const results = Array.from({ length: 11 }, (_, index) => (index === 5 ? null : { v: index }));
    expect(result.changes.get("id-each")).toEqual({ status: "SUCCEEDED", output: { results }, finished: true });
    expect(result.transition).toEqual({ status: "SUCCEEDED", output: { results }, error: null });
    expect(result.events.map((event) => event.type)).toEqual(["STEP_FINISHED", "RUN_STATUS"]);
  });

  it("finishes a map over no items", async () => {
    const result = await plan(mapped, [mapRow([])]);
    expect(result.changes.get("id-each")).toEqual({ status: "SUCCEEDED", output: { results: [] }, finished: true });
  });

  it("waits for a map whose items are not made yet", async () => {
    const map = mapRow([1, 2]);
    expect(mapsToCollect(parseWorkflow(`${header}${mapped}`), [map])).toEqual([]);
    expect((await plan(mapped, [map])).changes.size).toBe(0);
  });

  it("fails the map when an item fails, naming the item, and cancels the other items", async () => {
    const map = mapRow([0, 1, 2, 3]);
    const rows = [
      map,
      item(map, 0, "SUCCEEDED", { output: { v: 0 } }),
      item(map, 1, "RUNNING"),
      item(map, 2, "FAILED", { error: { code: "TIMEOUT", message: "too slow" } }),
      item(map, 3),
    ];
    const result = await plan(mapped, rows);
    expect(result.changes.get("id-each")).toEqual({
      status: "FAILED",
      error: { code: "TIMEOUT", message: "item 2: too slow", details: { item: 2 } },
      finished: true,
    });
    expect(result.transition).toMatchObject({ status: "FAILED", error: { code: "TIMEOUT", message: 'step "each" failed: item 2: too slow' } });
    expect(keys(result.cancelled)).toEqual(["each[1]", "each[3]"]);
    expect(result.queued).toEqual([]);
  });

  it("leaves an agent's call rows alone: only fan-out steps own their children", async () => {
    const agent = `steps:
  - id: ask
    uses: agent
    with: { prompt: "hi" }
`;
    const ask = row("ask", "RUNNING", { input: { prompt: "hi" } });
    const call = row("ask:attempt-1:call-1", "SUCCEEDED", { stepId: "ask", parentId: ask.id });
    expect(mapsToCollect(parseWorkflow(`${header}${agent}`), [ask, call])).toEqual([]);
    const result = await plan(agent, [ask, call]);
    expect(result.changes.size).toBe(0);
    expect(result.transition).toBeUndefined();
  });
});

describe("run planner: wait", () => {
  const waiting = `steps:
  - id: approve
    uses: wait
    with: { prompt: "ok?" }
  - id: side
    uses: transform
    with: {}
  - id: after
    uses: transform
    needs: [approve]
    with: { approved: "\${{ steps.approve.output.ok }}" }
`;

  it("sets the run WAITING when nothing else is busy", async () => {
    const result = await plan(waiting, [row("approve", "WAITING"), row("side", "SUCCEEDED", { output: {} }), row("after")]);
    expect(result.transition).toEqual({ status: "WAITING" });
    expect(result.events).toEqual([{ runId: "run-1", type: "RUN_STATUS", status: "WAITING" }]);
  });

  it("keeps the run RUNNING while another step is busy", async () => {
    const result = await plan(waiting, [row("approve", "WAITING"), row("side", "RUNNING"), row("after")]);
    expect(result.transition).toBeUndefined();
  });

  it("runs again once the wait is resumed", async () => {
    const result = await plan(waiting, [row("approve", "SUCCEEDED", { output: { ok: true } }), row("side", "SUCCEEDED", { output: {} }), row("after")], { status: "WAITING" });
    expect(keys(result.queued)).toEqual(["after"]);
    expect(result.changes.get("id-after")).toEqual({ status: "QUEUED", input: { approved: true } });
    expect(result.transition).toEqual({ status: "RUNNING" });
  });
});

describe("run planner: steps without side effects finish inline", () => {
  it("finishes a chain of transforms in one plan, each from the output before it, then the run", async () => {
    const result = await plan(chain, [row("a"), row("b")], { status: "QUEUED", input: { name: "Ada" }, inline: true });
    expect(result.queued).toEqual([]);
    expect(result.changes.get("id-a")).toEqual({ status: "SUCCEEDED", input: { text: "hi Ada" }, output: { text: "hi Ada" }, started: true, finished: true });
    expect(result.changes.get("id-b")).toEqual({ status: "SUCCEEDED", input: { text: "hi Ada!" }, output: { text: "hi Ada!" }, started: true, finished: true });
    expect(result.transition).toEqual({ status: "SUCCEEDED", output: { text: "hi Ada!" }, error: null });
    expect(result.inlined.map(({ row, uses }) => [row.key, uses])).toEqual([["a", "transform"], ["b", "transform"]]);
    // Subscribers see each step start and finish, in order, as if it had run in a worker.
    expect(result.events.map((event) => `${event.type}:${event.stepKey ?? event.status}`)).toEqual([
      "RUN_STATUS:RUNNING",
      "STEP_STARTED:a",
      "STEP_FINISHED:a",
      "STEP_STARTED:b",
      "STEP_FINISHED:b",
      "RUN_STATUS:SUCCEEDED",
    ]);
  });

  it("still queues steps with effects, and finishes what they need first", async () => {
    const result = await plan(
      `steps:
  - id: shape
    uses: transform
    with: { q: "cats" }
  - id: find
    uses: search
    with: { text: "\${{ steps.shape.output.q }}" }
`,
      [row("shape"), row("find")],
      { inline: true },
    );
    expect(statuses(result.rows)).toEqual({ shape: "SUCCEEDED", find: "QUEUED" });
    expect(keys(result.queued)).toEqual(["find"]);
    expect(result.transition).toBeUndefined();
  });

  it("fails a step over the size limit instead of finishing it, and the run with it", async () => {
    const result = await plan(`steps:\n  - id: big\n    uses: transform\n    with: { text: "\${{ $pad('', 200, 'x') }}" }\n`, [row("big")], { inline: true, maxValueBytes: 150 });
    expect(result.changes.get("id-big")).toMatchObject({ status: "FAILED", error: { code: "PAYLOAD_TOO_LARGE" } });
    expect(result.transition).toMatchObject({ status: "FAILED" });
  });

  it("finishes a map's transform items at once, whatever the concurrency, then the map, then what needs the map", async () => {
    const yaml = `steps:
  - id: each
    uses: map
    with: { items: [1, 2, 3], concurrency: 1, step: { uses: transform, with: { v: "\${{ item }}" } } }
  - id: after
    uses: transform
    with: { count: "\${{ $count(steps.each.output.results) }}" }
outputs:
  count: "\${{ steps.after.output.count }}"
`;
    const map = row("each", "RUNNING", { input: { items: [0, 1, 2], concurrency: 1, step: { uses: "transform", with: { v: "${{ item }}" } } } as Row["input"] });
    const result = await plan(yaml, [map, item(map, 0), item(map, 1), item(map, 2), row("after")], { inline: true });
    expect(result.queued).toEqual([]);
    expect(result.changes.get("id-each")).toEqual({ status: "SUCCEEDED", output: { results: [{ v: 0 }, { v: 1 }, { v: 2 }] }, finished: true });
    expect(result.changes.get("id-after")).toMatchObject({ status: "SUCCEEDED", output: { count: 3 } });
    expect(result.transition).toEqual({ status: "SUCCEEDED", output: { count: 3 }, error: null });
  });

  it("without `inline`, queues transforms like any step", async () => {
    const result = await plan(chain, [row("a"), row("b")], { input: { name: "Ada" } });
    expect(keys(result.queued)).toEqual(["a"]);
    expect(result.inlined).toEqual([]);
  });
});
