import type { AppContext } from "../services/app/app-context.ts";
import { markAssetFailed } from "../services/assets/asset-records.ts";
import { SQL_UTC_NOW, type Job, type JobKind } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import type { QueueName } from "../services/queue/job-payloads.ts";

const QUEUE_OF_KIND: Record<JobKind, QueueName> = { INGEST: "ingest", GENERATE: "generate" };

/**
 * Cancels a job of the project that no worker has started: it leaves the queue, its row turns CANCELLED
 * (subscribers of `jobEvents` get that and end), and an ingest's asset is marked FAILED with CANCELLED
 * (`reindexAsset` queues it again). A finished job is a CONFLICT naming its state; a running one too, since a
 * worker cannot be stopped midway; another project's job is NOT_FOUND. Nothing changes on a refusal.
 */
export async function cancelProjectJob(app: Pick<AppContext, "db" | "queues" | "events">, projectId: string, id: string): Promise<Job> {
  const job = await app.db.job.findFirst({ where: { id, projectId } });
  if (!job) throw new TesseraError(ErrorCode.NOT_FOUND, `no job ${id} in this project`);
  const refuse = (status: string) =>
    new TesseraError(
      ErrorCode.CONFLICT,
      status === "RUNNING"
        ? `job ${id} is RUNNING: a worker has it and it cannot be stopped midway; wait for it to finish`
        : `job ${id} already finished (${status}); only a QUEUED job can be cancelled`,
      { status },
    );
  if (job.status !== "QUEUED") throw refuse(job.status);
  const queued = await app.queues.queue(QUEUE_OF_KIND[job.kind]).getJob(job.id);
  if (queued) {
    try {
      // Refused by BullMQ while a worker holds the job's lock: it started after the row was read.
      await queued.remove();
    } catch {
      throw refuse("RUNNING");
    }
  }
  const error = { code: ErrorCode.CANCELLED, message: `job ${id} was cancelled before it ran` };
  const cancelled = await app.db.$executeRaw`
    UPDATE "Job" SET status = 'CANCELLED', error = ${JSON.stringify(error)}::jsonb, "finishedAt" = ${SQL_UTC_NOW}, "updatedAt" = ${SQL_UTC_NOW}
    WHERE id = ${id} AND "projectId" = ${projectId} AND status = 'QUEUED'`;
  if (cancelled === 0) {
    const now = await app.db.job.findFirst({ where: { id, projectId }, select: { status: true } });
    if (!now) throw new TesseraError(ErrorCode.NOT_FOUND, `no job ${id} in this project`);
    throw refuse(now.status);
  }
  if (job.kind === "INGEST" && job.assetId) await markAssetFailed(app.db, job.assetId, error);
  app.events.publish("job", id, { jobId: id, status: "CANCELLED", progress: job.progress, error, at: new Date().toISOString() });
  return app.db.job.findFirstOrThrow({ where: { id, projectId } });
}
