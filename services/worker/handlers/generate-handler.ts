import { sql } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import type { JobHandler } from "../job-handler.ts";
import { checkGenerateRequest } from "../../generation/generate-request.ts";
import { runGenerateTask } from "../../generation/generate-task.ts";
import { UsageMeter } from "../../generation/usage-meter.ts";
import { chargeTokens } from "../../limits/token-budget.ts";

/**
 * The `generate` queue: the request is the Job row's input (checked again, as
 * attachments may have been deleted since), text streams as job events, the
 * output is text or a new asset, and the token usage goes to Job.usage.
 */
export const generateHandler: JobHandler<"generate"> = {
  async run({ jobId, projectId }, { app, tracker }) {
    // On node-postgres: every generate job reads this, and through Prisma (even raw) it cost 1-3 ms of the event loop.
    const [job] = await sql<{ input: unknown }>(app.db, `SELECT input FROM "Job" WHERE id = $1 AND "projectId" = $2`, [jobId, projectId]);
    if (!job) throw new TesseraError(ErrorCode.NOT_FOUND, `job ${jobId} no longer exists`);
    const { request, assets } = await checkGenerateRequest(app, projectId, job.input);
    const usage = new UsageMeter();
    // No "started" progress event: the tracker's RUNNING event says it, and each event is a Redis PUBLISH
    // (a write system call here, and one message for every watcher): a short job's Redis calls cost it more CPU than its model call.
    const output = await runGenerateTask(app, projectId, request, assets, {
      usage,
      onToken: (token) => tracker.token(token),
      origin: { jobId },
    });
    await chargeTokens(app, projectId, usage.total.totalTokens);
    return { output, usage: usage.toJSON() };
  },
};
