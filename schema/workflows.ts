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
import { inputJsonSchema } from "./workflow-input-schema.ts";
import { direction, rowConnection } from "./connections.ts";
import { loadLatestVersions, loadStepsOfRuns, loadVersions, loadVersionsOfWorkflows, loadWorkflows } from "./workflow-loaders.ts";

const RunStatusEnum = builder.enumType(RunStatus, {
  name: "RunStatus",
  description: "Where a workflow run is.",
  values: {
    QUEUED: { description: "Started; waiting for a worker." },
    RUNNING: { description: "Steps are running." },
    WAITING: { description: "A `wait` step waits for `resumeRun`." },
    SUCCEEDED: { description: "Every step ended; `output` holds the outputs." },
    FAILED: { description: "A step failed for good; `error` says which and why." },
    CANCELLED: { description: "Stopped by `cancelRun`." },
  },
});
const StepStatusEnum = builder.enumType(StepStatus, {
  name: "StepStatus",
  description: "Where one step of a run is.",
  values: {
    PENDING: { description: "Waits for the steps it needs." },
    QUEUED: { description: "Ready; waiting for a worker." },
    RUNNING: { description: "A worker runs it." },
    WAITING: { description: "A `wait` step waiting for `resumeRun`." },
    SUCCEEDED: { description: "Done; `output` holds its result." },
    FAILED: { description: "Failed after its retries; `error` says why." },
    SKIPPED: { description: "Not run: its `if` was false, or a step it needs was skipped." },
    CANCELLED: { description: "Not finished because the run was cancelled or failed." },
  },
});
const RunEventTypeEnum = builder.enumType(RunEventType, {
  name: "RunEventType",
  description: "What a run event reports.",
  values: {
    RUN_STATUS: { description: "The run's status changed (`runStatus`)." },
    STEP_STARTED: { description: "A step started an attempt." },
    STEP_FINISHED: { description: "A step succeeded (`output`)." },
    STEP_FAILED: { description: "A step failed for good (`error`)." },
    STEP_SKIPPED: { description: "A step was skipped." },
    STEP_WAITING: { description: "A `wait` step is waiting for `resumeRun`." },
    STEP_RETRYING: { description: "A step's attempt failed and it will run again." },
    LOG: { description: "A log line of a step (`message`)." },
    TOKEN: { description: "A piece of streamed generated text (`token`)." },
  },
});

type ErrorShape = { code: string; message: string; details?: unknown };
const WorkflowError = builder.objectRef<ErrorShape>("WorkflowError").implement({
  description: "Why a run or step failed.",
  fields: (t) => ({
    code: t.exposeString("code", { description: "A stable error code, e.g. INVALID_WORKFLOW, MODEL_ERROR, TIMEOUT." }),
    message: t.exposeString("message", { description: "What went wrong, for people." }),
    details: t.field({ type: "JSON", nullable: true, description: "More, by code: the step, the field path, limits.", resolve: (error) => error.details ?? null }),
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
    id: t.exposeID("id", { description: "The version's id." }),
    number: t.exposeInt("number", { description: "1 for the first published version, then 2, 3..." }),
    slug: t.string({
      description: "The workflow's slug.",
      resolve: async (version, _args, context) => (await WorkflowRef.getDataloader(context).load(version.workflowId)).slug,
    }),
    contentHash: t.exposeString("contentHash", { description: "Hash of the definition: publishing the same content again returns this version." }),
    definition: t.field({ type: "JSON", description: "The parsed, validated definition.", resolve: (version) => version.definition }),
    inputSchema: t.field({
      type: "JSON",
      description:
        "A JSON Schema (draft 2020-12) of the `input` `runWorkflow` takes for this version, from the file's `inputs`: what a form or a client can check before it runs. " +
        "A run's input that does not fit is BAD_USER_INPUT with `details.problems` ([{ path, message }]), one per field.",
      resolve: (version) => inputJsonSchema((version.definition as unknown as WorkflowDefinition).inputs ?? {}),
    }),
    source: t.exposeString("source", { description: "The text as published." }),
    warnings: t.stringList({
      description:
        "Steps whose model alias this deployment does not configure now, each with how to configure it; their runs fail with MODEL_NOT_FOUND until it is. Empty when every model is there.",
      resolve: (version, _args, context) => modelWarnings(context.app, version.definition as unknown as WorkflowDefinition),
    }),
    createdAt: t.field({ type: "DateTime", description: "When it was published.", resolve: (version) => version.createdAt }),
  }),
});

WorkflowRef.implement({
  description: "A named workflow of the project and its published versions.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The workflow's id." }),
    slug: t.exposeString("slug", { description: "Its name in the project, from the file's `slug`." }),
    createdAt: t.field({ type: "DateTime", description: "When its first version was published.", resolve: (workflow) => workflow.createdAt }),
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
  description: "One step of a run (one item of a map, one call of an agent).",
  fields: (t) => ({
    id: t.exposeID("key", { description: "The step's key in its run: its id, or `<id>[<n>]` for a map's n-th item." }),
    stepId: t.exposeString("stepId", { description: "The step's id in the workflow file." }),
    status: t.field({ type: StepStatusEnum, description: "Where the step is.", resolve: (step) => step.status }),
    input: t.field({ type: "JSON", nullable: true, description: "Its `with`, evaluated.", resolve: (step) => step.input }),
    output: t.field({ type: "JSON", nullable: true, description: "What it returned, once SUCCEEDED.", resolve: (step) => step.output }),
    error: t.field({ type: WorkflowError, nullable: true, description: "Why it failed.", resolve: (step) => step.error as ErrorShape | null }),
    attempts: t.exposeInt("attempts", { description: "How many times it was started." }),
    startedAt: t.field({ type: "DateTime", nullable: true, description: "When its first attempt started.", resolve: (step) => step.startedAt }),
    finishedAt: t.field({ type: "DateTime", nullable: true, description: "When it ended.", resolve: (step) => step.finishedAt }),
  }),
});

const RunRef = builder.objectRef<Run>("Run").implement({
  description: "One run of a workflow version.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The run's id." }),
    status: t.field({ type: RunStatusEnum, description: "Where the run is.", resolve: (run) => run.status }),
    input: t.field({ type: "JSON", description: "The input it was started with, checked against the workflow's inputs.", resolve: (run) => run.input }),
    output: t.field({ type: "JSON", nullable: true, description: "The workflow's `outputs`, once SUCCEEDED.", resolve: (run) => run.output }),
    error: t.field({ type: WorkflowError, nullable: true, description: "Why it failed.", resolve: (run) => run.error as ErrorShape | null }),
    version: t.field({
      type: WorkflowVersionRef,
      description: "The version this run pinned when it started.",
      resolve: (run) => run.workflowVersionId,
    }),
    steps: t.loadableGroup({
      type: StepRunRef,
      description: "Every step, in the order they were created; `stepsConnection` pages them.",
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
    createdAt: t.field({ type: "DateTime", description: "When it was started.", resolve: (run) => run.createdAt }),
    startedAt: t.field({ type: "DateTime", nullable: true, description: "When a worker first took it.", resolve: (run) => run.startedAt }),
    finishedAt: t.field({ type: "DateTime", nullable: true, description: "When it succeeded, failed or was cancelled.", resolve: (run) => run.finishedAt }),
  }),
});

const RunEventRef = builder.objectRef<RunEvent>("RunEvent").implement({
  description: "Something that happened in a run, as `runEvents` delivers it.",
  fields: (t) => ({
    runId: t.exposeID("runId", { description: "The run's id." }),
    type: t.field({ type: RunEventTypeEnum, description: "What happened.", resolve: (event) => event.type as RunEventType }),
    stepId: t.exposeString("stepId", { nullable: true, description: "The step's id in the workflow file, for step events." }),
    stepKey: t.exposeString("stepKey", { nullable: true, description: "The step's key in the run (`<id>[<n>]` in a map), for step events." }),
    status: t.exposeString("status", {
      nullable: true,
      description: "The run's status (RUN_STATUS) or the step's (step events), as text.",
      deprecationReason: "Use `runStatus` or `stepStatus`, which are enums.",
    }),
    runStatus: t.field({
      type: RunStatusEnum,
      nullable: true,
      description: "The run's new status, on RUN_STATUS events.",
      resolve: (event) => (event.type === RunEventType.RUN_STATUS && event.status ? (event.status as RunStatus) : null),
    }),
    stepStatus: t.field({
      type: StepStatusEnum,
      nullable: true,
      description: "The step's new status, on step events.",
      resolve: (event) => (event.type !== RunEventType.RUN_STATUS && event.stepKey && event.status ? (event.status as StepStatus) : null),
    }),
    message: t.exposeString("message", { nullable: true, description: "A log line, or what happened, for people." }),
    token: t.exposeString("token", { nullable: true, description: "A piece of streamed generated text." }),
    output: t.field({ type: "JSON", nullable: true, description: "The step's output, on STEP_FINISHED.", resolve: (event) => event.output ?? null }),
    error: t.field({ type: WorkflowError, nullable: true, description: "Why, on STEP_FAILED and a failed run.", resolve: (event) => event.error ?? null }),
    at: t.field({ type: "DateTime", description: "When it happened.", resolve: (event) => new Date(event.at) }),
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
    args: { definition: t.arg.string({ required: true, description: "The workflow file's text, YAML or JSON." }) },
    resolve: (_root, args, context) => publishWorkflow(context.app, context.project.id, args.definition),
  }),
);

builder.queryField("workflow", (t) =>
  t.withAuth({ project: true }).field({
    type: WorkflowRef,
    description: "One workflow of the project by its slug; NOT_FOUND if none.",
    args: { slug: t.arg.string({ required: true, description: "The workflow's slug." }) },
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
      slug: t.arg.string({ required: true, description: "The workflow's slug." }),
      input: t.arg({ type: "JSON", required: false, description: "The run's input: an object with the workflow's `inputs`." }),
      version: t.arg.int({ required: false, description: "The version number to run; the latest when left out." }),
    },
    resolve: (_root, args, context) =>
      startRun(context.app, { projectId: context.project.id, slug: args.slug, input: args.input ?? {}, version: args.version }),
  }),
);

builder.queryField("run", (t) =>
  t.withAuth({ project: true }).field({
    type: RunRef,
    description: "One run of the project; NOT_FOUND for another project's.",
    args: { id: t.arg.id({ required: true, description: "The run's id." }) },
    resolve: (_root, args, context) => findProjectRun(context.app, context.project.id, String(args.id)),
  }),
);

builder.queryField("runs", (t) =>
  t.withAuth({ project: true }).field({
    type: [RunRef],
    description: "The project's runs, newest first, at most 100 (`limit`).",
    deprecationReason: "At most 100 runs and no cursor: use `runsConnection`, which pages through every run and has `totalCount`.",
    args: {
      slug: t.arg.string({ required: false, description: "Only runs of the workflow with this slug." }),
      status: t.arg({ type: RunStatusEnum, required: false, description: "Only runs in this state." }),
      limit: t.arg.int({ required: false, defaultValue: 20, description: "At most this many, 1 to 100." }),
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
    description: "Stops a run: steps not finished are CANCELLED and the run turns CANCELLED.",
    args: { id: t.arg.id({ required: true, description: "The run's id." }) },
    resolve: (_root, args, context) => cancelRun(context.app, context.project.id, String(args.id)),
  }),
);

builder.mutationField("resumeRun", (t) =>
  t.withAuth({ project: true }).field({
    type: RunRef,
    description: "Ends a waiting `wait` step with `input` as its output; the run goes on.",
    args: {
      id: t.arg.id({ required: true, description: "The run's id." }),
      stepId: t.arg.string({ required: true, description: "The id of the waiting `wait` step." }),
      input: t.arg({ type: "JSON", required: false, description: "The step's output, checked against its schema if it has one." }),
    },
    resolve: (_root, args, context) =>
      resumeRun(context.app, context.project.id, String(args.id), args.stepId, args.input ?? {}),
  }),
);

builder.subscriptionField("runEvents", (t) =>
  t.withAuth({ project: true }).field({
    type: RunEventRef,
    description: "The run's status now, then every step started, finished, failed, log line and token until it ends.",
    args: { id: t.arg.id({ required: true, description: "The run's id." }) },
    subscribe: async (_root, args, context) => {
      const run = await findProjectRun(context.app, context.project.id, String(args.id));
      return watchRun(context.app, run.id);
    },
    resolve: (event) => event,
  }),
);
