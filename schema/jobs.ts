import { JobStatus, type Job } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import type { JobEvent } from "../services/queue/event-bus.ts";
import type { ProjectContext } from "../services/gateway/context.ts";
import { watchJob } from "../services/gateway/watch-job.ts";
import { builder } from "./builder.ts";

export const JobStatusEnum = builder.enumType(JobStatus, { name: "JobStatus" });

const JobError = builder.objectRef<{ code: string; message: string }>("JobError").implement({
  fields: (t) => ({ code: t.exposeString("code"), message: t.exposeString("message") }),
});

export const JobRef = builder.objectRef<Job>("Job").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    kind: t.exposeString("kind"),
    status: t.field({ type: JobStatusEnum, resolve: (job) => job.status }),
    progress: t.exposeFloat("progress"),
    attempts: t.exposeInt("attempts"),
    output: t.field({ type: "JSON", nullable: true, resolve: (job) => job.output }),
    error: t.field({ type: JobError, nullable: true, resolve: (job) => job.error as { code: string; message: string } | null }),
    usage: t.field({ type: "JSON", nullable: true, resolve: (job) => job.usage }),
    createdAt: t.field({ type: "DateTime", resolve: (job) => job.createdAt }),
    finishedAt: t.field({ type: "DateTime", nullable: true, resolve: (job) => job.finishedAt }),
  }),
});

const JobEventRef = builder.objectRef<JobEvent>("JobEvent").implement({
  fields: (t) => ({
    jobId: t.exposeID("jobId"),
    status: t.field({ type: JobStatusEnum, resolve: (event) => event.status as JobStatus }),
    progress: t.exposeFloat("progress"),
    token: t.exposeString("token", { nullable: true, description: "A piece of streamed generated text." }),
    message: t.exposeString("message", { nullable: true }),
    error: t.field({ type: JobError, nullable: true, resolve: (event) => event.error ?? null }),
    at: t.exposeString("at"),
  }),
});

export async function findProjectJob(context: ProjectContext, id: string): Promise<Job> {
  const job = await context.app.db.job.findFirst({ where: { id, projectId: context.project.id } });
  if (!job) throw new TesseraError(ErrorCode.NOT_FOUND, `no job ${id} in this project`);
  return job;
}

builder.queryField("job", (t) =>
  t.withAuth({ project: true }).field({
    type: JobRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, context) => findProjectJob(context, String(args.id)),
  }),
);

builder.subscriptionField("jobEvents", (t) =>
  t.withAuth({ project: true }).field({
    type: JobEventRef,
    description: "The job's current state, then every change until it finishes.",
    args: { id: t.arg.id({ required: true }) },
    subscribe: async (_root, args, context) => {
      const job = await findProjectJob(context, String(args.id));
      return watchJob(context.app, job.id);
    },
    resolve: (event) => event,
  }),
);
