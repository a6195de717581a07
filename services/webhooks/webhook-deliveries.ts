import type { Config } from "../core/config.ts";
import { Prisma, type Database, type WebhookDelivery } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { safeFetch } from "../assets/safe-fetch.ts";
import type { JobQueues } from "../queue/job-queues.ts";
import type { EventPayload } from "./event-payloads.ts";
import { decryptSecret } from "./secret-box.ts";
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signatureHeader } from "./webhook-signature.ts";
import { findProjectSubscription } from "./webhook-subscriptions.ts";
import { webhookSettings } from "./webhook-settings.ts";

export type DeliveryDeps = { db: Database; queues: JobQueues; config: Pick<Config, "URL_ALLOW_HOSTS" | "URL_MAX_REDIRECTS">; logger: Logger };

/** Most bytes of a receiver's answer that are read (and dropped): only its status matters. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** BullMQ retries a delivery: `attempts` tries in all, the gaps doubling from WEBHOOK_RETRY_BASE_MS. */
async function enqueueDelivery(queues: JobQueues, deliveryId: string, jobId: string) {
  const settings = webhookSettings();
  await queues.enqueue(
    "webhook-delivery",
    { jobId, deliveryId },
    {
      jobId,
      attempts: settings.WEBHOOK_DELIVERY_ATTEMPTS,
      backoff: { type: "exponential", delay: settings.WEBHOOK_RETRY_BASE_MS },
      removeOnComplete: true,
      removeOnFail: { count: 1000 },
    },
  );
}

/**
 * One delivery row per subscription of the event's project that asked for
 * its type, then one job each. The same event fanned out twice (a retried
 * job) makes no second row, and the job ids make no second job.
 */
export async function fanOutEvent(deps: DeliveryDeps, payload: EventPayload): Promise<number> {
  const subscriptions = await deps.db.webhookSubscription.findMany({
    where: { projectId: payload.projectId, paused: false, events: { has: payload.type } },
    select: { id: true },
  });
  if (!subscriptions.length) return 0;
  await deps.db.webhookDelivery.createMany({
    data: subscriptions.map((subscription) => ({
      projectId: payload.projectId,
      subscriptionId: subscription.id,
      eventId: payload.id,
      event: payload.type,
      payload: payload as unknown as Prisma.InputJsonValue,
    })),
    skipDuplicates: true,
  });
  const deliveries = await deps.db.webhookDelivery.findMany({ where: { eventId: payload.id, status: "PENDING" }, select: { id: true } });
  await Promise.all(deliveries.map((delivery) => enqueueDelivery(deps.queues, delivery.id, `delivery_${delivery.id}`)));
  return deliveries.length;
}

/**
 * Sends one delivery: POST of the event as JSON, signed (webhook-signature.ts),
 * through the SSRF guard. A 2xx answer delivers it. Any other answer, or no
 * answer, is recorded and thrown, so BullMQ tries again later; a URL the guard
 * refuses fails the delivery at once. `final`: no try is left after this one.
 */
export async function sendDelivery(deps: DeliveryDeps, deliveryId: string, final: boolean): Promise<void> {
  const delivery = await deps.db.webhookDelivery.findUnique({ where: { id: deliveryId }, include: { subscription: true } });
  if (!delivery || delivery.status !== "PENDING") return; // deleted, or done by an earlier try
  const settings = webhookSettings();
  const body = JSON.stringify(delivery.payload);
  const headers = {
    "content-type": "application/json",
    "user-agent": "Tessera-Webhooks/1",
    [SIGNATURE_HEADER]: signatureHeader(decryptSecret(delivery.subscription.secretEncrypted), body),
    [DELIVERY_HEADER]: delivery.id,
    [EVENT_HEADER]: delivery.event,
  };
  let status: number | null = null;
  let failure: TesseraError | null = null;
  try {
    const response = await safeFetch(
      delivery.subscription.url,
      { method: "POST", headers, body },
      { allowHosts: deps.config.URL_ALLOW_HOSTS, timeoutMs: settings.WEBHOOK_DELIVERY_TIMEOUT_MS, maxBytes: MAX_RESPONSE_BYTES, maxRedirects: 0 },
    );
    status = response.status;
    await response.text().catch(() => "");
    if (!response.ok) failure = new TesseraError(ErrorCode.FETCH_FAILED, `the receiver answered ${response.status}`, { status: response.status });
  } catch (error) {
    failure = error instanceof TesseraError ? error : new TesseraError(ErrorCode.FETCH_FAILED, `the request failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  const refused = failure?.code === ErrorCode.URL_NOT_ALLOWED || failure?.code === ErrorCode.BAD_USER_INPUT;
  const now = new Date();
  await deps.db.webhookDelivery.updateMany({
    where: { id: delivery.id, status: "PENDING" },
    data: {
      attempts: { increment: 1 },
      lastAttemptAt: now,
      responseStatus: status,
      error: failure ? `${failure.code}: ${failure.message}` : null,
      ...(failure ? (refused || final ? { status: "FAILED" } : {}) : { status: "SUCCEEDED", deliveredAt: now }),
    },
  });
  if (failure) throw failure;
}

/** Sends a delivery again with a fresh set of tries, whatever its state; its id (the receiver's idempotency key) stays. */
export async function redeliver(deps: DeliveryDeps, projectId: string, deliveryId: string): Promise<WebhookDelivery> {
  const delivery = await deps.db.webhookDelivery.findFirst({ where: { id: deliveryId, projectId } });
  if (!delivery) throw new TesseraError(ErrorCode.NOT_FOUND, `no webhook delivery ${deliveryId} in this project`);
  await findProjectSubscription(deps.db, projectId, delivery.subscriptionId);
  const updated = await deps.db.webhookDelivery.update({ where: { id: deliveryId }, data: { status: "PENDING", error: null } });
  await enqueueDelivery(deps.queues, deliveryId, `redelivery_${deliveryId}_${Date.now()}`);
  return updated;
}
