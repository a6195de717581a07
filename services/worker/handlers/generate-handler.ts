import { sql } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import type { JobHandler } from "../job-handler.ts";
import { checkGenerateRequest } from "../../generation/generate-request.ts";
import { runGenerateTask } from "../../generation/generate-task.ts";
import { UsageMeter } from "../../generation/usage-meter.ts";
import { chargeTokens } from "../../limits/token-budget.ts";

/**
 * The `generate` queue: the request is the Job row's input, carried in the
 * payload (checked again, as attachments may have been deleted since; the token
 * budget only when the mutation's check is a second old), text streams as job
 * events, the output is text or a new asset, and the token usage goes to Job.usage.
 */
export const generateHandler: JobHandler<"generate"> = {
  async run({ jobId, projectId, request: carried, checkedAt }, { app, tracker }) {
    // The mutation's job carries its stored input; one re-enqueued from its row reads it (a row that is gone fails
    // the job as NOT_FOUND either way: the tracker's RUNNING write, which every later write waits for, finds none).
    let input: unknown = carried;
    if (input === undefined) {
      const [job] = await sql<{ input: unknown }>(app.db, `SELECT input FROM "Job" WHERE id = $1 AND "projectId" = $2`, [jobId, projectId]);
      if (!job) throw new TesseraError(ErrorCode.NOT_FOUND, `job ${jobId} no longer exists`);
      input = job.input;
    }
    const { request, assets } = await checkGenerateRequest(app, projectId, input, { budgetCheckedAt: checkedAt });
    const usage = new UsageMeter();
    // No "started" progress event: the tracker's RUNNING event says it, and each event is a Redis PUBLISH
    // (a write system call here, and one message for every watcher): a short job's Redis calls cost it more CPU than its model call.
    const output = await runGenerateTask(app, projectId, request, assets, {
      usage,
      onToken: (token) => tracker.token(token),
      origin: { jobId },
    });
    // Charged beside the job's end, not before it: the count is a soft limit (a running generation may end a period
    // over budget) and the usage is stored on the Job row; waiting for it put one more Redis round trip on every job's path.
    void chargeTokens(app, projectId, usage.total.totalTokens).catch((error: unknown) => app.logger.warn({ err: error }, "charging the job's tokens failed"));
    return { output, usage: usage.toJSON() };
  },
};
