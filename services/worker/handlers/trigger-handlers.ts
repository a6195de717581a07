import { describeEvent } from "../../webhooks/event-payloads.ts";
import { fanOutEvent, sendDelivery } from "../../webhooks/webhook-deliveries.ts";
import { webhookSettings } from "../../webhooks/webhook-settings.ts";
import { fireScheduledTrigger, startAssetTriggers } from "../../../workflows/triggers/trigger-runs.ts";
import type { JobHandler } from "../job-handler.ts";

/** A schedule trigger's job scheduler fired: start its run. */
export const workflowTriggerHandler: JobHandler<"workflow-trigger"> = {
  tracked: false,
  async run({ triggerId }, { app }) {
    const runId = await fireScheduledTrigger(app, triggerId);
    return { output: { runId } };
  },
};

/** A project event: one delivery per matching webhook subscription, and the runs of matching asset triggers. */
export const projectEventHandler: JobHandler<"project-event"> = {
  tracked: false,
  async run(event, { app }) {
    const payload = await describeEvent(app.db, event);
    if (!payload) return; // the run, job or asset is gone
    const deliveries = await fanOutEvent(app, payload);
    const runs = event.type === "asset.ready" ? await startAssetTriggers(app, event.subjectId) : [];
    return { output: { deliveries, runs } };
  },
};

/** One outbound delivery; a failed try throws, and BullMQ tries again after its backoff. */
export const webhookDeliveryHandler: JobHandler<"webhook-delivery"> = {
  tracked: false,
  async run({ deliveryId }, { app, attempt }) {
    await sendDelivery(app, deliveryId, attempt >= webhookSettings().WEBHOOK_DELIVERY_ATTEMPTS);
  },
};
