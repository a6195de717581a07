import { afterEach, describe, expect, it, vi } from "vitest";
import type { AppContext } from "../../services/core/app-context.ts";
import { PROGRESS_ROW_INTERVAL_MS, JobTracker } from "../../services/worker/job-tracker.ts";

/** Just what the tracker touches: job row updates and the event bus. */
function fakeApp() {
  const writes: Array<Record<string, unknown>> = [];
  const events: Array<{ status: string; progress: number; message?: string }> = [];
  const app = {
    db: {
      job: {
        update: vi.fn(async ({ data }: { data: Record<string, unknown> }) => {
          writes.push(data);
          return { id: "job-1" };
        }),
      },
    },
    events: { publish: (_topic: string, _id: string, event: { status: string; progress: number; message?: string }) => events.push(event) },
  } as unknown as AppContext;
  return { app, writes, events };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("JobTracker", () => {
  it("publishes every stage's progress, but writes progress to the row at most once per interval; status changes always", async () => {
    vi.useFakeTimers();
    const { app, writes, events } = fakeApp();
    const tracker = new JobTracker(app, "job-1");
    await tracker.started(1);
    for (const [index, stage] of ["verify-blob", "decode", "encode", "index"].entries()) await tracker.progress((index + 1) / 4, stage);
    // Quick stages: events for each, no progress row write yet (the RUNNING write just happened).
    expect(events.map((event) => event.message)).toEqual(["attempt 1 started", "verify-blob", "decode", "encode", "index"]);
    expect(events.at(-1)!.progress).toBe(1);
    expect(writes.map((data) => Object.keys(data).sort().join(","))).toEqual(["attempts,error,status"]);

    // A slow stage: the next progress is written.
    vi.advanceTimersByTime(PROGRESS_ROW_INTERVAL_MS);
    await tracker.progress(0.5, "slow");
    expect(writes.at(-1)).toEqual({ progress: 0.5 });

    await tracker.succeeded({ ok: true });
    expect(writes.at(-1)).toMatchObject({ status: "SUCCEEDED", progress: 1, output: { ok: true } });
    expect(events.at(-1)).toMatchObject({ status: "SUCCEEDED", progress: 1 });
  });

  it("a job row that is gone is NOT_FOUND", async () => {
    const { app } = fakeApp();
    const { Prisma } = await import("../../services/core/database.ts");
    (app.db.job.update as unknown as ReturnType<typeof vi.fn>).mockRejectedValueOnce(
      new Prisma.PrismaClientKnownRequestError("No record was found for an update.", { code: "P2025", clientVersion: "6" }),
    );
    await expect(new JobTracker(app, "job-1").started(1)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
