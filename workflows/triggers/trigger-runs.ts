import type { AppContext } from "../../services/app/app-context.ts";
import { Prisma, type Run, type WorkflowTrigger } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { decryptSecret } from "../../services/webhooks/secret-box.ts";
import { verifySignature } from "../../services/webhooks/webhook-signature.ts";
import { webhookSettings } from "../../services/webhooks/webhook-settings.ts";
import { evaluateValue, type ExpressionScope } from "../dsl/expression.ts";
import type { InputSpec } from "../dsl/input-types.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import { findVersion, startRun } from "../engine/run-service.ts";
import { disarmSchedule } from "./trigger-schedules.ts";

type TriggerWithSlug = WorkflowTrigger & { workflow: { slug: string } };

/**
 * Evaluates a trigger's input mapping over what the trigger gives (`body`, `headers` or `asset`).
 * An input whose expression finds nothing (null) is left out, so its default or optionality applies.
 */
async function mapInput(trigger: WorkflowTrigger, given: Record<string, unknown>): Promise<Record<string, unknown>> {
  const scope = { inputs: {}, steps: {}, ...given } as ExpressionScope;
  const value = (await evaluateValue(trigger.input, scope, { path: ["on", trigger.kind.toLowerCase(), "input"] })) as Record<string, unknown> | null;
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, entry]) => entry !== null && entry !== undefined));
}

/**
 * Runs an effect at most once per (trigger, delivery id): the row is claimed
 * first; a second claim finds it and gets the first one's run. When the start
 * fails the claim is released, so a retry with the same id can start it.
 */
async function once(app: AppContext, triggerId: string, deliveryId: string, start: () => Promise<Run>): Promise<{ runId: string; duplicate: boolean }> {
  try {
    await app.db.triggerDelivery.create({ data: { triggerId, deliveryId } });
  } catch (error) {
    if (!(error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002")) throw error;
    const existing = await app.db.triggerDelivery.findUnique({ where: { triggerId_deliveryId: { triggerId, deliveryId } } });
    if (!existing?.runId) throw new TesseraError(ErrorCode.CONFLICT, `delivery ${deliveryId} is being handled; retry in a moment`);
    return { runId: existing.runId, duplicate: true };
  }
  let run: Run;
  try {
    run = await start();
  } catch (error) {
    await app.db.triggerDelivery.delete({ where: { triggerId_deliveryId: { triggerId, deliveryId } } }).catch(() => {});
    throw error;
  }
  await app.db.triggerDelivery.update({ where: { triggerId_deliveryId: { triggerId, deliveryId } }, data: { runId: run.id } });
  return { runId: run.id, duplicate: false };
}

/** A schedule fired (the `workflow-trigger` job): one run with the trigger's input, unless it was paused or deleted meanwhile. */
export async function fireScheduledTrigger(app: AppContext, triggerId: string): Promise<string | null> {
  const trigger = await app.db.workflowTrigger.findUnique({ where: { id: triggerId }, include: { workflow: { select: { slug: true } } } });
  if (!trigger || trigger.kind !== "SCHEDULE") {
    await disarmSchedule(app, triggerId).catch(() => {}); // a scheduler left behind by a deleted trigger
    return null;
  }
  if (trigger.paused) return null;
  const run = await startRun(app, { projectId: trigger.projectId, slug: trigger.workflow.slug, input: trigger.input ?? {} });
  return run.id;
}

export type WebhookRequest = { rawBody: Uint8Array; headers: Headers };

/**
 * An incoming webhook: the signature (`Tessera-Signature`, see
 * services/webhooks/webhook-signature.ts) is checked over the raw body and
 * the timestamp within WEBHOOK_TOLERANCE_SECONDS before anything is read or
 * stored; a `Tessera-Delivery` id makes the request idempotent. The JSON body
 * goes through the trigger's input mapping (or is the input as it is).
 */
export async function startWebhookRun(app: AppContext, triggerId: string, request: WebhookRequest): Promise<{ runId: string; duplicate: boolean }> {
  const trigger = await app.db.workflowTrigger.findUnique({ where: { id: triggerId }, include: { workflow: { select: { slug: true } } } });
  if (!trigger || trigger.kind !== "WEBHOOK") throw new TesseraError(ErrorCode.NOT_FOUND, "no such webhook trigger");
  if (!trigger.secretEncrypted) {
    throw new TesseraError(ErrorCode.UNAUTHENTICATED, "this trigger has no secret yet: call rotateTriggerSecret to get one");
  }
  const check = verifySignature(decryptSecret(trigger.secretEncrypted), request.headers.get("tessera-signature"), request.rawBody, {
    toleranceSeconds: webhookSettings().WEBHOOK_TOLERANCE_SECONDS,
  });
  if (!check.ok) throw new TesseraError(ErrorCode.UNAUTHENTICATED, check.reason);
  if (trigger.paused) throw new TesseraError(ErrorCode.CONFLICT, "this trigger is paused");
  let body: unknown;
  try {
    body = request.rawBody.length ? JSON.parse(Buffer.from(request.rawBody).toString("utf8")) : {};
  } catch {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "the body is not JSON");
  }
  const start = async () => {
    const input = trigger.input !== null ? await mapInput(trigger, { body, headers: Object.fromEntries(request.headers) }) : body;
    return startRun(app, { projectId: trigger.projectId, slug: trigger.workflow.slug, input });
  };
  const deliveryId = request.headers.get("tessera-delivery");
  if (deliveryId !== null && (deliveryId.length === 0 || deliveryId.length > 200)) {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "Tessera-Delivery must be 1 to 200 characters");
  }
  // Without a delivery id, the signature itself is one: a captured request replayed within the window starts nothing new.
  return once(app, trigger.id, deliveryId ?? `signature:${check.timestamp}:${check.signature}`, start);
}

/** The asset input a trigger without a mapping fills: the one input of type asset. */
async function assetInputName(app: AppContext, trigger: TriggerWithSlug): Promise<string | undefined> {
  const version = await findVersion(app, trigger.projectId, trigger.workflow.slug);
  const inputs = (version.definition as unknown as WorkflowDefinition).inputs as Record<string, InputSpec>;
  const names = Object.entries(inputs).filter(([, spec]) => spec.type === "asset").map(([name]) => name);
  return names.length === 1 ? names[0] : undefined;
}

/**
 * An asset became READY (the `asset.ready` project event): every unpaused
 * asset trigger of its project whose modality and tags match starts a run,
 * once per asset (a retried event job, or the asset re-indexed later, starts
 * no second run). One trigger's refusal (an input that no longer fits) does
 * not stop the others.
 */
export async function startAssetTriggers(app: AppContext, assetId: string): Promise<string[]> {
  const asset = await app.db.asset.findUnique({ where: { id: assetId } });
  if (!asset || asset.status !== "READY") return [];
  const candidates = await app.db.workflowTrigger.findMany({
    where: { projectId: asset.projectId, kind: "ASSET", paused: false, OR: [{ modality: null }, { modality: asset.modality }] },
    include: { workflow: { select: { slug: true } } },
  });
  const matching = candidates.filter((trigger) => trigger.tags.every((tag) => asset.tags.includes(tag)));
  const runs: string[] = [];
  for (const trigger of matching) {
    try {
      const start = async () => {
        let input: Record<string, unknown>;
        if (trigger.input !== null) {
          input = await mapInput(trigger, { asset: { id: asset.id, modality: asset.modality, tags: asset.tags, metadata: asset.metadata, mimeType: asset.mimeType, filename: asset.filename } });
        } else {
          const name = await assetInputName(app, trigger);
          if (!name) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `workflow "${trigger.workflow.slug}" has no single asset input to give asset ${asset.id}`);
          input = { [name]: asset.id };
        }
        return startRun(app, { projectId: trigger.projectId, slug: trigger.workflow.slug, input });
      };
      // Once per asset: re-indexing (READY again) is a repair, not a new arrival.
      const { runId, duplicate } = await once(app, trigger.id, `asset:${asset.id}`, start);
      if (duplicate) continue;
      runs.push(runId);
    } catch (error) {
      app.logger.warn({ err: error, triggerId: trigger.id, assetId }, "an asset trigger could not start its run");
      // A full queue or project is worth a retry of the event; a refused input is not.
      if (error instanceof TesseraError && (error.code === ErrorCode.SERVICE_UNAVAILABLE || error.code === ErrorCode.QUOTA_EXCEEDED)) throw error;
    }
  }
  return runs;
}
