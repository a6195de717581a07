import type { AppContext } from "../app/app-context.ts";
import { Prisma, SQL_UTC_NOW, preparedName, sql, type JobStatus } from "../core/database.ts";
import { ErrorCode, TesseraError, type ErrorRecord } from "../core/errors.ts";
import type { JobEvent } from "../queue/event-bus.ts";
import { relayProjectEvents, type ProjectEventType } from "../queue/project-events.ts";
import { subscribedSql } from "../webhooks/webhook-subscriptions.ts";

/** A job's row takes a progress figure at most this often; every figure is still published as an event. */
export const PROGRESS_ROW_INTERVAL_MS = 1000;
/** Generated text arriving within this many ms is one jobEvents event. */
export const TOKEN_FLUSH_MS = 15;
/**
 * A progress event waits at most this long for the job's next event, and goes out with it (see progress). Every
 * event is still published, in order, with the time it was made (`at`): only when it goes out moves, by up to this much.
 */
export const PROGRESS_FLUSH_MS = 100;

/**
 * Keeps a job's row and its subscribers in step: the row is the truth, events are the news.
 * Status changes (RUNNING, SUCCEEDED, FAILED, back to QUEUED) are written to the row at once;
 * progress between them is published on every call but written to the row at most once per
 * PROGRESS_ROW_INTERVAL_MS (the final status write sets progress 1), so a pipeline of quick
 * stages costs one row write per job rather than one per stage, and its events travel with the
 * next one made within PROGRESS_FLUSH_MS (one SPUBLISH for several). Each write is one
 * UPDATE straight on node-postgres (`sql`), prepared: every job makes these writes, and through Prisma
 * each cost 1-3 ms of the event loop, its raw statements included (bench/README.md, generation).
 */
export class JobTracker {
  private progressValue = 0;
  private progressWrittenAt = 0;

  constructor(
    private readonly app: AppContext,
    readonly jobId: string,
  ) {}

  /** The RUNNING write while it commits (see started); it rejects when that write failed. */
  private starting: Promise<void> | undefined;
  /** Events made while the RUNNING write commits: published, in order, right after it. */
  private held: JobEvent[] | undefined;
  /** Set when the RUNNING write failed: the attempt's events are dropped until its failure is written. */
  private silenced = false;

  /** `deferred`: a progress event, which may wait for the next one (see progress). */
  private publish(status: JobStatus, extra: Partial<JobEvent> = {}, deferred = false) {
    if (extra.token === undefined) this.flushTokens();
    if (this.silenced) return;
    const event: JobEvent = { jobId: this.jobId, status, progress: this.progressValue, at: new Date().toISOString(), ...extra };
    if (deferred) {
      this.deferred.push(event);
      this.deferredFlush ??= setTimeout(() => this.flushDeferred(), PROGRESS_FLUSH_MS);
      return;
    }
    this.flushDeferred(); // they were made before this one
    this.emit(event);
  }

  private emit(event: JobEvent) {
    if (this.held) this.held.push(event);
    else this.app.events.publish("job", this.jobId, event);
  }

  /** Progress events not published yet, oldest first: each later event, or PROGRESS_FLUSH_MS, sends them out. */
  private deferred: JobEvent[] = [];
  private deferredFlush: NodeJS.Timeout | undefined;

  private flushDeferred() {
    clearTimeout(this.deferredFlush);
    this.deferredFlush = undefined;
    if (this.deferred.length === 0) return;
    const events = this.deferred;
    this.deferred = [];
    for (const event of events) this.emit(event);
  }

  /** `assignments`: the columns to set, as SQL; updatedAt is set here. */
  private async write(assignments: Prisma.Sql) {
    const statement = Prisma.sql`UPDATE "Job" SET ${assignments}, "updatedAt" = ${SQL_UTC_NOW} WHERE id = ${this.jobId} RETURNING 1`;
    const updated = await sql(this.app.db, statement.text, statement.values, preparedName("tessera_job", statement.text));
    if (updated.length === 0) throw new TesseraError(ErrorCode.NOT_FOUND, `job ${this.jobId} no longer exists`);
  }

  /**
   * A job's end: the row's final write, which also answers whether a webhook subscription of the
   * job's project asks for `event` (job.* events go to webhooks only), and then writes the event into
   * the outbox in the same statement. Only then: a `project-event` job costs the queue an add, a fetch
   * and a completion, and its handler two row reads, for every job of every project, most of which
   * subscribe to nothing.
   */
  private async end(assignments: Prisma.Sql, event: ProjectEventType | null) {
    const update = Prisma.sql`UPDATE "Job" AS j SET ${assignments}, "updatedAt" = ${SQL_UTC_NOW} WHERE j.id = ${this.jobId}`;
    // With an event: written into the outbox in the same statement when a subscription asks for it.
    const statement = event
      ? Prisma.sql`
        WITH ended AS (${update} RETURNING j.id, j."projectId", ${subscribedSql(Prisma.sql`j."projectId"`, event)} AS subscribed),
        event AS (INSERT INTO "ProjectEventOutbox" ("projectId", type, "subjectId") SELECT "projectId", ${event}, id FROM ended WHERE subscribed)
        SELECT subscribed FROM ended`
      : Prisma.sql`${update} RETURNING false AS subscribed`;
    const rows = await sql<{ subscribed: boolean }>(this.app.db, statement.text, statement.values, preparedName("tessera_job_end", statement.text));
    if (rows.length === 0) throw new TesseraError(ErrorCode.NOT_FOUND, `job ${this.jobId} no longer exists`);
    return rows[0]!.subscribed;
  }

  /**
   * Marks the job RUNNING without waiting for the write: the handler's work (reading its input,
   * calling its model) goes on while the commit's flush is under way, which on a busy disk costs
   * as long as a short generation. The write is still durable before anything depends on it:
   * every event the job makes (RUNNING first) is held until it is committed, and every later
   * write of the row waits for it and fails if it failed (NOT_FOUND for a row that is gone).
   */
  async started(attempt: number) {
    this.progressWrittenAt = Date.now();
    this.held = [];
    const starting = this.write(Prisma.sql`status = 'RUNNING', attempts = ${attempt}, error = NULL`).then(
      () => {
        const held = this.held ?? [];
        this.held = undefined;
        this.app.events.publish("job", this.jobId, { jobId: this.jobId, status: "RUNNING", progress: 0, message: `attempt ${attempt} started`, at: new Date().toISOString() });
        for (const event of held) this.app.events.publish("job", this.jobId, event);
      },
      (error: unknown) => {
        // Nothing of an attempt whose start was not stored is published (its failure, once written, is).
        this.held = undefined;
        this.silenced = true;
        clearTimeout(this.deferredFlush);
        this.deferredFlush = undefined;
        this.deferred = [];
        throw error;
      },
    );
    starting.catch(() => {}); // awaited (and thrown) by the next write of the row
    this.starting = starting;
  }

  /**
   * `fraction` in [0, 1]. The event waits up to PROGRESS_FLUSH_MS for the job's next event and is published in the
   * same tick, so the bus sends both as one SPUBLISH: an ingest's stages (blob check, decode, encode, index) each end
   * in a tick of their own, a few ms apart, and were four SPUBLISH of the job's six (bench/README.md, encode).
   */
  async progress(fraction: number, message?: string) {
    this.progressValue = Math.max(0, Math.min(1, fraction));
    if (Date.now() - this.progressWrittenAt >= PROGRESS_ROW_INTERVAL_MS) {
      await this.starting;
      await this.write(Prisma.sql`progress = ${this.progressValue}`);
      this.progressWrittenAt = Date.now();
    }
    this.publish("RUNNING", { message }, true);
  }

  /**
   * Streams a piece of generated text to subscribers; not stored row by row. Pieces that arrive
   * within TOKEN_FLUSH_MS go out as one event (each event is a Redis PUBLISH and a JSON message:
   * 64 of them cost a short job more CPU than its model call); any status event flushes first.
   */
  token(token: string) {
    this.pendingTokens += token;
    this.tokenFlush ??= setTimeout(() => this.flushTokens(), TOKEN_FLUSH_MS);
  }

  private pendingTokens = "";
  private tokenFlush: NodeJS.Timeout | undefined;

  private flushTokens() {
    clearTimeout(this.tokenFlush);
    this.tokenFlush = undefined;
    if (!this.pendingTokens) return;
    const token = this.pendingTokens;
    this.pendingTokens = "";
    this.publish("RUNNING", { token });
  }

  /**
   * At the job's end, text still waiting for its flush goes out with the status event instead: the bus sends the
   * events of one tick on a channel as one SPUBLISH (services/queue/event-bus.ts), so a short reply's last tokens
   * and SUCCEEDED are one message, and they reach a watcher no later than they did (the status event is after them).
   */
  private holdTokensForTheEnd() {
    clearTimeout(this.tokenFlush);
    this.tokenFlush = undefined;
  }

  async succeeded(output: unknown, usage?: unknown) {
    this.holdTokensForTheEnd();
    await this.starting;
    this.progressValue = 1;
    const subscribed = await this.end(
      Prisma.sql`status = 'SUCCEEDED', progress = 1, output = ${jsonOrNull(output)}::jsonb, "finishedAt" = ${SQL_UTC_NOW}${
        usage ? Prisma.sql`, usage = ${JSON.stringify(usage)}::jsonb` : Prisma.empty
      }`,
      "job.succeeded",
    );
    this.publish("SUCCEEDED");
    if (subscribed) await relayProjectEvents(this.app, { subjectId: this.jobId });
  }

  /** A failure that will be retried keeps the job QUEUED; the last one marks it FAILED. */
  async failed(error: ErrorRecord, final: boolean) {
    this.holdTokensForTheEnd();
    await this.starting?.catch(() => {}); // the failure is written whether or not the start was
    const status: JobStatus = final ? "FAILED" : "QUEUED";
    const subscribed = await this.end(
      Prisma.sql`status = ${status}::"JobStatus", error = ${JSON.stringify(error)}::jsonb${final ? Prisma.sql`, "finishedAt" = ${SQL_UTC_NOW}` : Prisma.empty}`,
      final ? "job.failed" : null,
    );
    this.silenced = false;
    this.publish(status, { error: { code: error.code, message: error.message } });
    if (subscribed) await relayProjectEvents(this.app, { subjectId: this.jobId });
  }
}

/** A job's output as a jsonb parameter: undefined and null both store SQL NULL, as Prisma.DbNull did. */
function jsonOrNull(value: unknown) {
  return value === undefined || value === null ? null : JSON.stringify(value);
}
