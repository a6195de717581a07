import type { AppContext } from "../core/app-context.ts";
import { Prisma, type JobStatus } from "../core/database.ts";
import type { ErrorRecord } from "../core/errors.ts";
import type { JobEvent } from "../queue/event-bus.ts";

/** Keeps a job's row and its subscribers in step: the row is the truth, events are the news. */
export class JobTracker {
  private progressValue = 0;

  constructor(
    private readonly app: AppContext,
    readonly jobId: string,
  ) {}

  private publish(status: JobStatus, extra: Partial<JobEvent> = {}) {
    this.app.events.publish("job", this.jobId, {
      jobId: this.jobId,
      status,
      progress: this.progressValue,
      at: new Date().toISOString(),
      ...extra,
    });
  }

  async started(attempt: number) {
    await this.app.db.job.update({ where: { id: this.jobId }, data: { status: "RUNNING", attempts: attempt, error: Prisma.DbNull } });
    this.publish("RUNNING", { message: `attempt ${attempt} started` });
  }

  /** `fraction` in [0, 1]. */
  async progress(fraction: number, message?: string) {
    this.progressValue = Math.max(0, Math.min(1, fraction));
    await this.app.db.job.update({ where: { id: this.jobId }, data: { progress: this.progressValue } });
    this.publish("RUNNING", { message });
  }

  /** Streams a piece of generated text to subscribers; not stored row by row. */
  token(token: string) {
    this.publish("RUNNING", { token });
  }

  async succeeded(output: unknown, usage?: unknown) {
    this.progressValue = 1;
    await this.app.db.job.update({
      where: { id: this.jobId },
      data: {
        status: "SUCCEEDED",
        progress: 1,
        output: (output ?? Prisma.DbNull) as Prisma.InputJsonValue,
        ...(usage ? { usage: usage as Prisma.InputJsonValue } : {}),
        finishedAt: new Date(),
      },
    });
    this.publish("SUCCEEDED");
  }

  /** A failure that will be retried keeps the job QUEUED; the last one marks it FAILED. */
  async failed(error: ErrorRecord, final: boolean) {
    const status: JobStatus = final ? "FAILED" : "QUEUED";
    await this.app.db.job.update({
      where: { id: this.jobId },
      data: { status, error: error as Prisma.InputJsonValue, ...(final ? { finishedAt: new Date() } : {}) },
    });
    this.publish(status, { error: { code: error.code, message: error.message } });
  }
}
