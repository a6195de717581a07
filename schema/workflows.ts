import { RunStatus, StepStatus, type Database, type Run, type StepRun, type Workflow, type WorkflowVersion } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import type { RunEvent } from "../services/queue/event-bus.ts";
import { requireProject, type GatewayContext, type ProjectContext } from "../services/gateway/context.ts";
import { RunEventType } from "../workflows/engine/run-events.ts";
import { cancelRun, findProjectRun, publishWorkflow, resumeRun, startRun } from "../workflows/engine/run-service.ts";
import { watchRun } from "../workflows/engine/watch-run.ts";
import { modelWarnings } from "../workflows/engine/model-warnings.ts";
import type { WorkflowDefinition } from "../workflows/dsl/workflow-schema.ts";
import { builder } from "./builder.ts";
import { direction, rowConnection } from "./connections.ts";
import { loadLatestVersions, loadStepsOfRuns, loadVersions, loadVersionsOfWorkflows, loadWorkflows } from "./workflow-loaders.ts";

const RunStatusEnum = builder.enumType(RunStatus, { name: "RunStatus" });
const StepStatusEnum = builder.enumType(StepStatus, { name: "StepStatus" });
const RunEventTypeEnum = builder.enumType(RunEventType, { name: "RunEventType" });

type ErrorShape = { code: string; message: string; details?: unknown };
const WorkflowError = builder.objectRef<ErrorShape>("WorkflowError").implement({
  description: "Why a run or step failed.",
  fields: (t) => ({
    code: t.exposeString("code"),
    message: t.exposeString("message"),
    details: t.field({ type: "JSON", nullable: true, resolve: (error) => error.details ?? null }),
  }),
});

/** A dataloader batch function over the caller's project only: another project's keys load nothing. */
const forCallerProject =
  <Row>(load: (db: Database, projectId: string, keys: readonly string[]) => Promise<Row[]>) =>
  (keys: string[], context: GatewayContext) =>
    load(context.app.db, requireProject(context).id, keys);

// Fields of these types may return an id instead of a row; the id is loaded with the others of the request.
export const WorkflowRef = builder.loadableObjectRef<Workflow, string>("Workflow", {
  load: forCallerProject(loadWorkflows),
  toKey: (workflow) => workflow.id,
  sort: true,
  // Workflows a resolver already returned (`workflows`) are not read again for a version's slug.
  cacheResolved: true,
});
export const WorkflowVersionRef = builder.loadableObjectRef<WorkflowVersion, string>("WorkflowVersion", {
  load: forCallerProject(loadVersions),
  toKey: (version) => version.id,
  sort: true,
});

WorkflowVersionRef.implement({
  description: "An immutable published definition; runs pin one.",
  fields: (t) => ({
    id: t.exposeID("id"),
    number: t.exposeInt("number"),
    slug: t.string({
      resolve: async (version, _args, context) => (await WorkflowRef.getDataloader(context).load(version.workflowId)).slug,
    }),
    contentHash: t.exposeString("contentHash"),
    definition: t.field({ type: "JSON", description: "The parsed, validated definition.", resolve: (version) => version.definition }),
    source: t.exposeString("source", { description: "The text as published." }),
    warnings: t.stringList({
      description:
        "Steps whose model alias this deployment does not configure now, each with how to configure it; their runs fail with MODEL_NOT_FOUND until it is. Empty when every model is there.",
      resolve: (version, _args, context) => modelWarnings(context.app, version.definition as unknown as WorkflowDefinition),
    }),
    createdAt: t.field({ type: "DateTime", resolve: (version) => version.createdAt }),
  }),
});

WorkflowRef.implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    slug: t.exposeString("slug"),
    createdAt: t.field({ type: "DateTime", resolve: (workflow) => workflow.createdAt }),
    // `group` and `sort` see rows: the casts only drop the id that the ref's shape also admits.
    versions: t.loadableGroup({
      type: WorkflowVersionRef,
      description: "Every published version, oldest first.",
      deprecationReason: "Unbounded: use `versionsConnection`, which pages and has `totalCount`.",
      load: forCallerProject(loadVersionsOfWorkflows),
      group: (version) => (version as WorkflowVersion).workflowId,
      resolve: (workflow) => workflow.id,
    }),
    versionsConnection: t.connection({
      type: WorkflowVersionRef,
      description: "Published versions, newest first, a page at a time.",
      resolve: (workflow, args, context) => {
        const where = { workflowId: workflow.id, workflow: { projectId: requireProject(context).id } };
        return rowConnection(
          args,
          ({ cursor, skip, take, inverted }) =>
            context.app.db.workflowVersion.findMany({ where, cursor, skip, take, orderBy: [{ number: direction(false, inverted) }] }),
          () => context.app.db.workflowVersion.count({ where }),
        );
      },
    }),
    published: t.loadable({
      type: WorkflowVersionRef,
      nullable: true,
      description: "The latest version: what `runWorkflow` runs unless asked for another.",
      load: forCallerProject(loadLatestVersions),
      sort: (version) => (version as WorkflowVersion).workflowId,
      resolve: (workflow) => workflow.id,
    }),
  }),
});

const StepRunRef = builder.objectRef<StepRun>("StepRun").implement({
  fields: (t) => ({
    id: t.exposeID("key", { description: "The step's key in its run: its id, or `<id>[<n>]` for a map's n-th item." }),
    stepId: t.exposeString("stepId", { description: "The step's id in the workflow file." }),
    status: t.field({ type: StepStatusEnum, resolve: (step) => step.status }),
    input: t.field({ type: "JSON", nullable: true, resolve: (step) => step.input }),
    output: t.field({ type: "JSON", nullable: true, resolve: (step) => step.output }),
    error: t.field({ type: WorkflowError, nullable: true, resolve: (step) => step.error as ErrorShape | null }),
    attempts: t.exposeInt("attempts"),
    startedAt: t.field({ type: "DateTime", nullable: true, resolve: (step) => step.startedAt }),
    finishedAt: t.field({ type: "DateTime", nullable: true, resolve: (step) => step.finishedAt }),
  }),
});

const RunRef = builder.objectRef<Run>("Run").implement({
  fields: (t) => ({
    id: t.exposeID("id"),
    status: t.field({ type: RunStatusEnum, resolve: (run) => run.status }),
    input: t.field({ type: "JSON", resolve: (run) => run.input }),
    output: t.field({ type: "JSON", nullable: true, resolve: (run) => run.output }),
    error: t.field({ type: WorkflowError, nullable: true, resolve: (run) => run.error as ErrorShape | null }),
    version: t.field({
      type: WorkflowVersionRef,
      description: "The version this run pinned when it started.",
      resolve: (run) => run.workflowVersionId,
    }),
    steps: t.loadableGroup({
      type: StepRunRef,
      load: forCallerProject(loadStepsOfRuns),
      group: (step) => step.runId,
      resolve: (run) => run.id,
    }),
    stepsConnection: t.connection({
      type: StepRunRef,
      description: "The run's steps in the order they were created, a page at a time (a map over many items has many).",
      args: { status: t.arg({ type: StepStatusEnum, required: false, description: "Only steps in this state." }) },
      resolve: (run, args, context) => {
        const where = { runId: run.id, run: { projectId: requireProject(context).id }, ...(args.status ? { status: args.status } : {}) };
        return rowConnection(
          args,
          ({ cursor, skip, take, inverted }) =>
            context.app.db.stepRun.findMany({
              where,
              cursor,
              skip,
              take,
              orderBy: [{ createdAt: direction(true, inverted) }, { key: direction(true, inverted) }, { id: direction(true, inverted) }],
            }),
          () => context.app.db.stepRun.count({ where }),
        );
      },
    }),
    createdAt: t.field({ type: "DateTime", resolve: (run) => run.createdAt }),
    startedAt: t.field({ type: "DateTime", nullable: true, resolve: (run) => run.startedAt }),
    finishedAt: t.field({ type: "DateTime", nullable: true, resolve: (run) => run.finishedAt }),
  }),
});

const RunEventRef = builder.objectRef<RunEvent>("RunEvent").implement({
  fields: (t) => ({
    runId: t.exposeID("runId"),
    type: t.field({ type: RunEventTypeEnum, resolve: (event) => event.type as RunEventType }),
    stepId: t.exposeString("stepId", { nullable: true }),
    stepKey: t.exposeString("stepKey", { nullable: true }),
    status: t.exposeString("status", { nullable: true }),
    message: t.exposeString("message", { nullable: true }),
    token: t.exposeString("token", { nullable: true, description: "A piece of streamed generated text." }),
    output: t.field({ type: "JSON", nullable: true, resolve: (event) => event.output ?? null }),
    error: t.field({ type: WorkflowError, nullable: true, resolve: (event) => event.error ?? null }),
    at: t.exposeString("at"),
  }),
});

async function findProjectWorkflow(context: ProjectContext, slug: string) {
  const workflow = await context.app.db.workflow.findUnique({ where: { projectId_slug: { projectId: context.project.id, slug } } });
  if (!workflow) throw new TesseraError(ErrorCode.NOT_FOUND, `no workflow "${slug}" in this project`);
  return workflow;
}

builder.mutationField("publishWorkflow", (t) =>
  t.withAuth({ project: true }).field({
    type: WorkflowVersionRef,
    description: "Checks a workflow file (YAML or JSON) and stores it as a new version; the same content returns the existing version.",
    args: { definition: t.arg.string({ required: true }) },
    resolve: (_root, args, context) => publishWorkflow(context.app, context.project.id, args.definition),
  }),
);

builder.queryField("workflow", (t) =>
  t.withAuth({ project: true }).field({
    type: WorkflowRef,
    args: { slug: t.arg.string({ required: true }) },
    resolve: (_root, args, context) => findProjectWorkflow(context, args.slug),
  }),
);

builder.queryField("workflows", (t) =>
  t.withAuth({ project: true }).field({
    type: [WorkflowRef],
    description: "Every workflow of the project, by slug.",
    deprecationReason: "Unbounded: use `workflowsConnection`, which pages and has `totalCount`.",
    resolve: (_root, _args, context) =>
      context.app.db.workflow.findMany({ where: { projectId: context.project.id }, orderBy: { slug: "asc" } }),
  }),
);

builder.mutationField("runWorkflow", (t) =>
  t.withAuth({ project: true }).field({
    type: RunRef,
    description: "Starts a run of the latest version, or of `version`; the input is checked against the workflow's inputs.",
    args: {
      slug: t.arg.string({ required: true }),
      input: t.arg({ type: "JSON", required: false }),
      version: t.arg.int({ required: false }),
    },
    resolve: (_root, args, context) =>
      startRun(context.app, { projectId: context.project.id, slug: args.slug, input: args.input ?? {}, version: args.version }),
  }),
);

builder.queryField("run", (t) =>
  t.withAuth({ project: true }).field({
    type: RunRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, context) => findProjectRun(context.app, context.project.id, String(args.id)),
  }),
);

builder.queryField("runs", (t) =>
  t.withAuth({ project: true }).field({
    type: [RunRef],
    description: "The project's runs, newest first, at most 100 (`limit`).",
    deprecationReason: "At most 100 runs and no cursor: use `runsConnection`, which pages through every run and has `totalCount`.",
    args: {
      slug: t.arg.string({ required: false }),
      status: t.arg({ type: RunStatusEnum, required: false }),
      limit: t.arg.int({ required: false, defaultValue: 20 }),
    },
    resolve: (_root, args, context) =>
      context.app.db.run.findMany({
        where: {
          projectId: context.project.id,
          ...(args.status ? { status: args.status } : {}),
          ...(args.slug ? { workflowVersion: { workflow: { slug: args.slug } } } : {}),
        },
        orderBy: { createdAt: "desc" },
        take: Math.min(Math.max(args.limit ?? 20, 1), 100),
      }),
  }),
);

builder.queryField("workflowsConnection", (t) =>
  t.withAuth({ project: true }).connection({
    type: WorkflowRef,
    description: "The project's workflows by slug, a page at a time.",
    resolve: (_root, args, context) => {
      const where = { projectId: context.project.id };
      return rowConnection(
        args,
        ({ cursor, skip, take, inverted }) =>
          context.app.db.workflow.findMany({ where, cursor, skip, take, orderBy: [{ slug: direction(true, inverted) }] }),
        () => context.app.db.workflow.count({ where }),
      );
    },
  }),
);

builder.queryField("runsConnection", (t) =>
  t.withAuth({ project: true }).connection({
    type: RunRef,
    description: "The project's runs, newest first, a page at a time: `first`/`after` go to older runs, `last`/`before` back to newer ones.",
    args: {
      status: t.arg({ type: RunStatusEnum, required: false, description: "Only runs in this state." }),
      workflow: t.arg.string({ required: false, description: "Only runs of the workflow with this slug." }),
      createdAfter: t.arg({ type: "DateTime", required: false, description: "Only runs created at or after this time." }),
      createdBefore: t.arg({ type: "DateTime", required: false, description: "Only runs created before this time." }),
    },
    resolve: (_root, args, context) => {
      const where = {
        projectId: context.project.id,
        ...(args.status ? { status: args.status } : {}),
        ...(args.workflow ? { workflowVersion: { workflow: { slug: args.workflow } } } : {}),
        ...(args.createdAfter || args.createdBefore
          ? { createdAt: { ...(args.createdAfter ? { gte: args.createdAfter } : {}), ...(args.createdBefore ? { lt: args.createdBefore } : {}) } }
          : {}),
      };
      return rowConnection(
        args,
        ({ cursor, skip, take, inverted }) =>
          context.app.db.run.findMany({
            where,
            cursor,
            skip,
            take,
            orderBy: [{ createdAt: direction(false, inverted) }, { id: direction(false, inverted) }],
          }),
        () => context.app.db.run.count({ where }),
      );
    },
  }),
);

builder.mutationField("cancelRun", (t) =>
  t.withAuth({ project: true }).field({
    type: RunRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, context) => cancelRun(context.app, context.project.id, String(args.id)),
  }),
);

builder.mutationField("resumeRun", (t) =>
  t.withAuth({ project: true }).field({
    type: RunRef,
    description: "Ends a waiting `wait` step with `input` as its output; the run goes on.",
    args: {
      id: t.arg.id({ required: true }),
      stepId: t.arg.string({ required: true }),
      input: t.arg({ type: "JSON", required: false }),
    },
    resolve: (_root, args, context) =>
      resumeRun(context.app, context.project.id, String(args.id), args.stepId, args.input ?? {}),
  }),
);

builder.subscriptionField("runEvents", (t) =>
  t.withAuth({ project: true }).field({
    type: RunEventRef,
    description: "The run's status now, then every step started, finished, failed, log line and token until it ends.",
    args: { id: t.arg.id({ required: true }) },
    subscribe: async (_root, args, context) => {
      const run = await findProjectRun(context.app, context.project.id, String(args.id));
      return watchRun(context.app, run.id);
    },
    resolve: (event) => event,
  }),
);
