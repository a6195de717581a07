import { JobKind, JobStatus, type Job } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import type { JobEvent } from "../services/queue/event-bus.ts";
import type { ProjectContext } from "../services/gateway/context.ts";
import { startingWith, watchJob } from "../services/gateway/watch-job.ts";
import { MAX_WATCHED_JOBS, watchJobs } from "../services/gateway/watch-jobs.ts";
import { builder } from "./builder.ts";
import { direction, rowConnection } from "./connections.ts";
import { cancelProjectJob } from "./job-cancel.ts";

export const JobStatusEnum = builder.enumType(JobStatus, {
  name: "JobStatus",
  description: "Where a job is.",
  values: {
    QUEUED: { description: "Waiting for a worker (also between retries)." },
    RUNNING: { description: "A worker has it." },
    SUCCEEDED: { description: "Done; `output` holds the result." },
    FAILED: { description: "Failed for good; `error` says why." },
    CANCELLED: { description: "Cancelled before it ran (`cancelJob`)." },
  },
});
export const JobKindEnum = builder.enumType(JobKind, {
  name: "JobKind",
  description: "What a job does.",
  values: {
    INGEST: { description: "Decodes, encodes and indexes an asset." },
    GENERATE: { description: "Runs a `generate` task." },
  },
});

const JobError = builder.objectRef<{ code: string; message: string }>("JobError").implement({
  description: "Why a job failed.",
  fields: (t) => ({
    code: t.exposeString("code", { description: "A stable error code, e.g. CORRUPT_MEDIA or MODEL_ERROR." }),
    message: t.exposeString("message", { description: "What went wrong, for people." }),
  }),
});

export const JobRef = builder.objectRef<Job>("Job").implement({
  description: "Work done in the background by a worker: an ingest or a generation.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The job's id." }),
    kind: t.field({ type: JobKindEnum, description: "What the job does.", resolve: (job) => job.kind }),
    status: t.field({ type: JobStatusEnum, description: "Where the job is.", resolve: (job) => job.status }),
    progress: t.exposeFloat("progress", { description: "0 to 1." }),
    attempts: t.exposeInt("attempts", { description: "How many times a worker has started it." }),
    output: t.field({ type: "JSON", nullable: true, description: "The result once SUCCEEDED: text, or the id of a new asset.", resolve: (job) => job.output }),
    error: t.field({
      type: JobError,
      nullable: true,
      description: "Why it failed (FAILED), or was cancelled.",
      resolve: (job) => job.error as { code: string; message: string } | null,
    }),
    usage: t.field({ type: "JSON", nullable: true, description: "Tokens and compute used, for generation jobs.", resolve: (job) => job.usage }),
    createdAt: t.field({ type: "DateTime", description: "When it was queued.", resolve: (job) => job.createdAt }),
    finishedAt: t.field({ type: "DateTime", nullable: true, description: "When it succeeded, failed or was cancelled.", resolve: (job) => job.finishedAt }),
  }),
});

const JobEventRef = builder.objectRef<JobEvent>("JobEvent").implement({
  description: "A change of a job, as `jobEvents` and `jobsEvents` deliver it.",
  fields: (t) => ({
    jobId: t.exposeID("jobId", { description: "The job's id." }),
    status: t.field({ type: JobStatusEnum, description: "The job's status after this event.", resolve: (event) => event.status as JobStatus }),
    progress: t.exposeFloat("progress", { description: "0 to 1." }),
    token: t.exposeString("token", { nullable: true, description: "A piece of streamed generated text." }),
    message: t.exposeString("message", { nullable: true, description: "What happened, for people: the stage, the attempt." }),
    error: t.field({ type: JobError, nullable: true, description: "Why it failed, on a failure.", resolve: (event) => event.error ?? null }),
    at: t.field({ type: "DateTime", description: "When it happened.", resolve: (event) => new Date(event.at) }),
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
    description: "One job of the project; NOT_FOUND for another project's.",
    args: { id: t.arg.id({ required: true, description: "The job's id." }) },
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
    args: { id: t.arg.id({ required: true, description: "The job's id." }) },
    subscribe: async (_root, args, context) => {
      // The watch's first read is the project check: a job of another project fails the subscription here with
      // NOT_FOUND, before any event, and costs no statement of its own.
      const events = watchJob(context.app, String(args.id), context.project.id);
      return startingWith(await events.next(), events);
    },
    resolve: (event) => event,
  }),
);

builder.subscriptionField("jobsEvents", (t) =>
  t.withAuth({ project: true }).field({
    type: JobEventRef,
    description:
      "Many jobs on one stream (an upload of many files, a batch of generations): each listed job's current state first, " +
      "in the order listed, then every change of any of them (`jobId` says whose), ending when all have finished. " +
      "A job of another project, or no job, fails the whole subscription with NOT_FOUND naming it, before any event. " +
      `At most ${MAX_WATCHED_JOBS} distinct ids (a repeated id counts once); an empty list or more are BAD_USER_INPUT, ` +
      "whose details name the limit (MAX_WATCHED_JOBS). One stream costs the gateway one request and one read for all its jobs.",
    args: { ids: t.arg.idList({ required: true, description: `The jobs' ids, 1 to ${MAX_WATCHED_JOBS}.` }) },
    subscribe: async (_root, args, context) => {
      // As jobEvents: the first read (one statement for all the jobs) is the project check, and fails here, before any event.
      const events = watchJobs(context.app, args.ids.map(String), context.project.id);
      return startingWith(await events.next(), events);
    },
    resolve: (event) => event,
  }),
);
