import { TriggerKind, type WorkflowTrigger } from "../services/core/database.ts";
import type { ProjectContext } from "../services/gateway/context.ts";
import { webhookTriggerUrl } from "../services/gateway/webhook-trigger-route.ts";
import { nextFireAt } from "../workflows/triggers/trigger-schedules.ts";
import {
  createScheduleTrigger,
  createWebhookTrigger,
  deleteTrigger,
  findProjectTrigger,
  rotateTriggerSecret,
  setTriggerPaused,
} from "../workflows/triggers/trigger-service.ts";
import { builder } from "./builder.ts";
import { WorkflowRef } from "./workflows.ts";

const TriggerKindEnum = builder.enumType(TriggerKind, {
  name: "TriggerKind",
  description: "SCHEDULE: a cron pattern; WEBHOOK: a signed POST to its URL; ASSET: an asset of the project becoming READY.",
  values: {
    SCHEDULE: { description: "Runs at the times of a cron pattern." },
    WEBHOOK: { description: "Runs on each signed POST to its URL." },
    ASSET: { description: "Runs when an asset of the project becomes READY." },
  },
});

/** The gateway's origin as the caller reached it, for webhook URLs. */
function originOf(context: ProjectContext): string {
  return new URL(context.request.url).origin;
}

const TriggerRef = builder.objectRef<WorkflowTrigger>("WorkflowTrigger").implement({
  description: "Starts runs of a workflow's latest published version. Declared in the file's `on:` (replaced on publish) or made over the API.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The trigger's id (a webhook trigger's URL ends with it)." }),
    kind: t.field({ type: TriggerKindEnum, description: "What starts its runs.", resolve: (trigger) => trigger.kind }),
    fromFile: t.boolean({ description: "Declared in the workflow file's `on:`: the next publish replaces or removes it.", resolve: (trigger) => trigger.key.startsWith("file:") }),
    workflow: t.field({ type: WorkflowRef, description: "The workflow it runs.", resolve: (trigger) => trigger.workflowId }),
    cron: t.exposeString("cron", { nullable: true, description: "SCHEDULE: the cron pattern (5 fields, or 6 with seconds first)." }),
    timezone: t.exposeString("timezone", { nullable: true, description: "SCHEDULE: the IANA time zone the pattern is read in; null is UTC." }),
    nextRunAt: t.field({
      type: "DateTime",
      nullable: true,
      description: "SCHEDULE: when it fires next (null while paused).",
      resolve: (trigger, _args, context) => (trigger.kind === "SCHEDULE" && !trigger.paused ? nextFireAt(context.app, trigger.id) : null),
    }),
    modality: t.exposeString("modality", { nullable: true, description: "ASSET: only assets of this modality; null is any." }),
    tags: t.exposeStringList("tags", { description: "ASSET: only assets carrying all of these tags." }),
    input: t.field({
      type: "JSON",
      nullable: true,
      description: "SCHEDULE: each run's input. WEBHOOK and ASSET: input name to value, expressions over `body`/`headers` or `asset`; null passes the body (or the asset id) as it is.",
      resolve: (trigger) => trigger.input,
    }),
    url: t.string({
      nullable: true,
      description: "WEBHOOK: where to POST (JSON, signed in `Tessera-Signature`, optionally with a `Tessera-Delivery` id).",
      resolve: (trigger, _args, context) => (trigger.kind === "WEBHOOK" ? webhookTriggerUrl(originOf(context as ProjectContext), trigger.id) : null),
    }),
    hasSecret: t.boolean({
      description: "WEBHOOK: a secret is set. One declared in a file has none until rotateTriggerSecret gives it one (it answers 401 until then).",
      resolve: (trigger) => trigger.secretEncrypted !== null,
    }),
    paused: t.exposeBoolean("paused", { description: "Paused triggers start nothing; a paused schedule has no BullMQ job scheduler." }),
    createdAt: t.field({ type: "DateTime", description: "When it was created.", resolve: (trigger) => trigger.createdAt }),
  }),
});

const TriggerWithSecret = builder.objectRef<{ trigger: WorkflowTrigger; secret: string }>("WorkflowTriggerWithSecret").implement({
  description: "A webhook trigger and its signing secret, shown this once.",
  fields: (t) => ({
    trigger: t.field({ type: TriggerRef, description: "The trigger.", resolve: (created) => created.trigger }),
    secret: t.exposeString("secret", { description: "The HMAC-SHA256 key of `Tessera-Signature`. Shown this once: store it now." }),
  }),
});

builder.objectField(WorkflowRef, "triggers", (t) =>
  t.field({
    type: [TriggerRef],
    description: "What starts this workflow's runs besides runWorkflow, oldest first.",
    resolve: (workflow, _args, context) =>
      context.app.db.workflowTrigger.findMany({ where: { workflowId: workflow.id, projectId: workflow.projectId }, orderBy: [{ createdAt: "asc" }, { key: "asc" }] }),
  }),
);

builder.queryField("trigger", (t) =>
  t.withAuth({ project: true }).field({
    type: TriggerRef,
    description: "One trigger of the project.",
    args: { id: t.arg.id({ required: true, description: "The trigger." }) },
    resolve: (_root, args, context) => findProjectTrigger(context.app, context.project.id, String(args.id)),
  }),
);

builder.mutationField("createScheduleTrigger", (t) =>
  t.withAuth({ project: true }).field({
    type: TriggerRef,
    description: "Runs a published workflow on a cron schedule (a BullMQ job scheduler). Times missed while no worker ran make one catch-up run.",
    args: {
      slug: t.arg.string({ required: true, description: "The workflow." }),
      cron: t.arg.string({ required: true, description: 'A cron pattern: "0 9 * * 1-5", or 6 fields with seconds first.' }),
      timezone: t.arg.string({ required: false, description: "An IANA time zone (Europe/Paris); default UTC." }),
      input: t.arg({ type: "JSON", required: false, description: "The input of each run (checked against the workflow's inputs at each run)." }),
    },
    resolve: (_root, args, context) =>
      createScheduleTrigger(context.app, context.project.id, { slug: args.slug, cron: args.cron, timezone: args.timezone, input: args.input }),
  }),
);

builder.mutationField("createWebhookTrigger", (t) =>
  t.withAuth({ project: true }).field({
    type: TriggerWithSecret,
    description: "Gives a published workflow a URL that starts a run per signed POST; the secret is returned once.",
    args: {
      slug: t.arg.string({ required: true, description: "The workflow." }),
      input: t.arg({ type: "JSON", required: false, description: 'Input name to value, e.g. { "text": "${{ body.message }}" }; without it the JSON body is the input.' }),
    },
    resolve: (_root, args, context) => createWebhookTrigger(context.app, context.project.id, { slug: args.slug, input: args.input }),
  }),
);

builder.mutationField("rotateTriggerSecret", (t) =>
  t.withAuth({ project: true }).field({
    type: TriggerWithSecret,
    description: "A new signing secret for a webhook trigger, returned once; the old one stops working at once.",
    args: { id: t.arg.id({ required: true, description: "The webhook trigger." }) },
    resolve: (_root, args, context) => rotateTriggerSecret(context.app, context.project.id, String(args.id)),
  }),
);

builder.mutationField("pauseTrigger", (t) =>
  t.withAuth({ project: true }).field({
    type: TriggerRef,
    description: "Stops a trigger from starting runs (a schedule's job scheduler is removed); runs already started go on.",
    args: { id: t.arg.id({ required: true, description: "The trigger." }) },
    resolve: (_root, args, context) => setTriggerPaused(context.app, context.project.id, String(args.id), true),
  }),
);

builder.mutationField("resumeTrigger", (t) =>
  t.withAuth({ project: true }).field({
    type: TriggerRef,
    description: "Lets a paused trigger start runs again; a schedule fires at its next time from now (no catch-up for the pause).",
    args: { id: t.arg.id({ required: true, description: "The trigger." }) },
    resolve: (_root, args, context) => setTriggerPaused(context.app, context.project.id, String(args.id), false),
  }),
);

builder.mutationField("deleteTrigger", (t) =>
  t.withAuth({ project: true }).field({
    type: TriggerRef,
    description: "Deletes a trigger and its schedule. One declared in the file comes back at the next publish that declares it.",
    args: { id: t.arg.id({ required: true, description: "The trigger." }) },
    resolve: (_root, args, context) => deleteTrigger(context.app, context.project.id, String(args.id)),
  }),
);
