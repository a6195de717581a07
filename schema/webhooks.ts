import { resolveCursorConnection, type ResolveCursorConnectionArgs } from "@pothos/plugin-relay";
import { WebhookDeliveryStatus, type WebhookDelivery, type WebhookSubscription } from "../services/core/database.ts";
import { PROJECT_EVENT_TYPES } from "../services/queue/project-events.ts";
import { redeliver } from "../services/webhooks/webhook-deliveries.ts";
import {
  createWebhookSubscription,
  deleteWebhookSubscription,
  setSubscriptionPaused,
} from "../services/webhooks/webhook-subscriptions.ts";
import { builder } from "./builder.ts";

/** `run.succeeded` is RUN_SUCCEEDED in GraphQL (enum values cannot hold dots); payloads and headers carry the dotted name. */
const eventEnumName = (event: string) => event.replace(".", "_").toUpperCase();

const EVENT_DESCRIPTIONS: Record<(typeof PROJECT_EVENT_TYPES)[number], string> = {
  "run.succeeded": "A workflow run finished with SUCCEEDED.",
  "run.failed": "A workflow run finished with FAILED.",
  "run.waiting": "A workflow run waits for resumeRun (a `wait` step); the payload names the waiting steps.",
  "job.succeeded": "An ingest or generate job succeeded.",
  "job.failed": "An ingest or generate job failed for good (after its retries).",
  "asset.ready": "An asset was ingested and indexed: it is READY.",
};

const WebhookEventEnum = builder.enumType("WebhookEvent", {
  description: "What a webhook subscription can be told about. Deliveries name it in dotted form (`run.succeeded`) in the body and the `Tessera-Event` header.",
  values: Object.fromEntries(PROJECT_EVENT_TYPES.map((event) => [eventEnumName(event), { value: event, description: EVENT_DESCRIPTIONS[event] }])) as Record<
    string,
    { value: (typeof PROJECT_EVENT_TYPES)[number]; description: string }
  >,
});

const WebhookDeliveryStatusEnum = builder.enumType(WebhookDeliveryStatus, {
  name: "WebhookDeliveryStatus",
  description: "PENDING: not yet delivered (tries left); SUCCEEDED: the receiver answered 2xx; FAILED: no try left, or the URL was refused.",
  values: {
    PENDING: { description: "Not yet delivered; tries are left." },
    SUCCEEDED: { description: "The receiver answered 2xx." },
    FAILED: { description: "No try left, or the URL was refused." },
  },
});

const WebhookSubscriptionRef = builder.objectRef<WebhookSubscription>("WebhookSubscription").implement({
  description: "A URL told about the project's events by signed POSTs. Its secret is shown once, when it is created.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The subscription's id." }),
    url: t.exposeString("url", { description: "Where deliveries are POSTed." }),
    events: t.field({ type: [WebhookEventEnum], description: "The events sent to it.", resolve: (row) => row.events as (typeof PROJECT_EVENT_TYPES)[number][] }),
    description: t.exposeString("description", { nullable: true, description: "A note for people." }),
    paused: t.exposeBoolean("paused", { description: "While paused, events are not sent (nor queued for later)." }),
    createdAt: t.field({ type: "DateTime", description: "When it was created.", resolve: (row) => row.createdAt }),
  }),
});

const WebhookDeliveryRef = builder.objectRef<WebhookDelivery>("WebhookDelivery").implement({
  description: "One event sent to one subscription; retried with exponential backoff until it is delivered or its tries run out.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The delivery's id, sent as `Tessera-Delivery`: the same on every retry, so receivers can deduplicate." }),
    subscriptionId: t.exposeID("subscriptionId", { description: "The subscription it was sent to." }),
    event: t.field({ type: WebhookEventEnum, description: "The event's type.", resolve: (row) => row.event as (typeof PROJECT_EVENT_TYPES)[number] }),
    eventId: t.exposeString("eventId", { description: "The event's id (the body's `id`); one event makes one delivery per subscription." }),
    payload: t.field({ type: "JSON", description: "The body as sent.", resolve: (row) => row.payload }),
    status: t.field({ type: WebhookDeliveryStatusEnum, description: "Where it stands.", resolve: (row) => row.status }),
    attempts: t.exposeInt("attempts", { description: "Tries made so far." }),
    responseStatus: t.exposeInt("responseStatus", { nullable: true, description: "The HTTP status of the last try's answer; null when there was none." }),
    error: t.exposeString("error", { nullable: true, description: "Why the last try failed, if it did." }),
    createdAt: t.field({ type: "DateTime", description: "When the event was fanned out to this subscription.", resolve: (row) => row.createdAt }),
    lastAttemptAt: t.field({ type: "DateTime", nullable: true, description: "When it was last tried.", resolve: (row) => row.lastAttemptAt }),
    deliveredAt: t.field({ type: "DateTime", nullable: true, description: "When the receiver accepted it.", resolve: (row) => row.deliveredAt }),
  }),
});

const CreatedWebhookSubscription = builder.objectRef<{ subscription: WebhookSubscription; secret: string }>("CreatedWebhookSubscription").implement({
  description: "A new subscription and its signing secret.",
  fields: (t) => ({
    subscription: t.field({ type: WebhookSubscriptionRef, description: "The subscription.", resolve: (created) => created.subscription }),
    secret: t.exposeString("secret", { description: "The HMAC-SHA256 key of `Tessera-Signature`. Shown this once: store it now." }),
  }),
});

builder.queryField("webhookSubscriptions", (t) =>
  t.withAuth({ project: true }).field({
    type: [WebhookSubscriptionRef],
    description: `The project's webhook subscriptions, oldest first (at most 50).`,
    resolve: (_root, _args, context) => context.app.db.webhookSubscription.findMany({ where: { projectId: context.project.id }, orderBy: [{ createdAt: "asc" }, { id: "asc" }] }),
  }),
);

builder.queryField("webhookDeliveries", (t) =>
  t.withAuth({ project: true }).connection({
    type: WebhookDeliveryRef,
    description: "The delivery log, newest first.",
    args: {
      subscriptionId: t.arg.id({ required: false, description: "Only deliveries to this subscription." }),
      status: t.arg({ type: WebhookDeliveryStatusEnum, required: false, description: "Only deliveries in this state." }),
    },
    resolve: async (_root, args, context) => {
      const where = {
        projectId: context.project.id,
        ...(args.subscriptionId ? { subscriptionId: String(args.subscriptionId) } : {}),
        ...(args.status ? { status: args.status } : {}),
      };
      const connection = await resolveCursorConnection(
        { args, toCursor: (row: WebhookDelivery) => row.id, defaultSize: 20, maxSize: 100 },
        ({ before, after, limit, inverted }: ResolveCursorConnectionArgs) =>
          context.app.db.webhookDelivery.findMany({
            where,
            cursor: before ? { id: before } : after ? { id: after } : undefined,
            skip: before || after ? 1 : 0,
            take: limit,
            orderBy: [{ createdAt: inverted ? "asc" : "desc" }, { id: inverted ? "asc" : "desc" }],
          }),
      );
      const result = { ...connection, totalCount: () => context.app.db.webhookDelivery.count({ where }) };
      return result;
    },
  }),
);

builder.mutationField("createWebhookSubscription", (t) =>
  t.withAuth({ project: true }).field({
    type: CreatedWebhookSubscription,
    description:
      "Subscribes a URL to events. Deliveries are POSTs of JSON signed in `Tessera-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`; private addresses are refused unless URL_ALLOW_HOSTS lists them.",
    args: {
      url: t.arg.string({ required: true, description: "An http(s) URL without credentials." }),
      events: t.arg({ type: [WebhookEventEnum], required: true, description: "The events to send it (at least one)." }),
      description: t.arg.string({ required: false, description: "A note for people." }),
    },
    resolve: (_root, args, context) =>
      createWebhookSubscription(context.app, context.project.id, { url: args.url, events: args.events, description: args.description }),
  }),
);

builder.mutationField("pauseWebhookSubscription", (t) =>
  t.withAuth({ project: true }).field({
    type: WebhookSubscriptionRef,
    description: "Stops sending events to the subscription (events meanwhile are not kept); deliveries already queued still go out.",
    args: { id: t.arg.id({ required: true, description: "The subscription." }) },
    resolve: (_root, args, context) => setSubscriptionPaused(context.app.db, context.project.id, String(args.id), true),
  }),
);

builder.mutationField("resumeWebhookSubscription", (t) =>
  t.withAuth({ project: true }).field({
    type: WebhookSubscriptionRef,
    description: "Sends events to a paused subscription again, from now on.",
    args: { id: t.arg.id({ required: true, description: "The subscription." }) },
    resolve: (_root, args, context) => setSubscriptionPaused(context.app.db, context.project.id, String(args.id), false),
  }),
);

builder.mutationField("deleteWebhookSubscription", (t) =>
  t.withAuth({ project: true }).field({
    type: WebhookSubscriptionRef,
    description: "Deletes the subscription and its delivery log; retries still queued stop.",
    args: { id: t.arg.id({ required: true, description: "The subscription." }) },
    resolve: (_root, args, context) => deleteWebhookSubscription(context.app.db, context.project.id, String(args.id)),
  }),
);

builder.mutationField("redeliverWebhook", (t) =>
  t.withAuth({ project: true }).field({
    type: WebhookDeliveryRef,
    description: "Sends a delivery again, with a fresh set of retries, whatever its state; it keeps its id and body (the signature is made anew).",
    args: { id: t.arg.id({ required: true, description: "The delivery." }) },
    resolve: (_root, args, context) => redeliver(context.app, context.project.id, String(args.id)),
  }),
);
