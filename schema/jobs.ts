import { JobKind, JobStatus, type Job } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import type { JobEvent } from "../services/queue/event-bus.ts";
import type { ProjectContext } from "../services/gateway/context.ts";
import { watchJob } from "../services/gateway/watch-job.ts";
import { builder } from "./builder.ts";
import { direction, rowConnection } from "./connections.ts";
import { cancelProjectJob } from "./job-cancel.ts";

export const JobStatusEnum = builder.enumType(JobStatus, { name: "JobStatus" });
export const JobKindEnum = builder.enumType(JobKind, { name: "JobKind" });

const JobError = builder.objectRef<{ code: string; message: string }>("JobError").implement({
  fields: (t) => ({ code: t.exposeString("code"), message: t.exposeString("message") }),
});

export const JobRef = builder.objectRef<Job>("Job").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    kind: t.field({ type: JobKindEnum, resolve: (job) => job.kind }),
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

builder.queryField("jobs", (t) =>
  t.withAuth({ project: true }).connection({
    type: JobRef,
    description: "The project's jobs (ingests and generations), newest first, a page at a time.",
    args: {
      kind: t.arg({ type: JobKindEnum, required: false, description: "Only jobs of this kind." }),
      status: t.arg({ type: JobStatusEnum, required: false, description: "Only jobs in this state." }),
    },
    resolve: (_root, args, context) => {
      const where = { projectId: context.project.id, ...(args.kind ? { kind: args.kind } : {}), ...(args.status ? { status: args.status } : {}) };
      return rowConnection(
        args,
        ({ cursor, skip, take, inverted }) =>
          context.app.db.job.findMany({
            where,
            cursor,
            skip,
            take,
            orderBy: [{ createdAt: direction(false, inverted) }, { id: direction(false, inverted) }],
          }),
        () => context.app.db.job.count({ where }),
      );
    },
  }),
);

builder.mutationField("cancelJob", (t) =>
  t.withAuth({ project: true }).field({
    type: JobRef,
    description:
      "Cancels a QUEUED job: it leaves the queue and turns CANCELLED (an ingest's asset turns FAILED with CANCELLED; `reindexAsset` queues it again). " +
      "CONFLICT, changing nothing, when the job is RUNNING or already finished; NOT_FOUND for a job of another project.",
    args: { id: t.arg.id({ required: true, description: "The job's id." }) },
    resolve: (_root, args, context) => cancelProjectJob(context.app, context.project.id, String(args.id)),
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
