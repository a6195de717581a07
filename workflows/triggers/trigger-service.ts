import { randomUUID } from "node:crypto";
import type { AppContext } from "../../services/app/app-context.ts";
import { Prisma, type Modality, type TriggerKind, type WorkflowTrigger } from "../../services/core/database.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { encryptSecret, newWebhookSecret } from "../../services/webhooks/secret-box.ts";
import { ScheduleTriggerSchema, WebhookTriggerSchema } from "../dsl/trigger-schema.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";
import { armSchedule, disarmSchedule } from "./trigger-schedules.ts";

/** Most triggers one workflow may have (from its file and over the API together). */
export const MAX_TRIGGERS_PER_WORKFLOW = 50;

type TriggerFields = { kind: TriggerKind; cron?: string | null; timezone?: string | null; modality?: Modality | null; tags?: string[]; input?: unknown };

/** The triggers a file's `on:` declares, keyed `file:<kind>:<n>` so a re-publish finds (and keeps) each one. */
function declaredTriggers(definition: WorkflowDefinition): Array<TriggerFields & { key: string }> {
  const on = definition.on;
  if (!on) return [];
  return [
    ...(on.schedule ?? []).map((entry, index) => ({ key: `file:schedule:${index}`, kind: "SCHEDULE" as const, cron: entry.cron, timezone: entry.timezone ?? null, input: entry.input })),
    ...(on.webhook ? [{ key: "file:webhook:0", kind: "WEBHOOK" as const, input: on.webhook.input ?? null }] : []),
    ...(on.asset ?? []).map((entry, index) => ({ key: `file:asset:${index}`, kind: "ASSET" as const, modality: entry.modality ?? null, tags: entry.tags, input: entry.input ?? null })),
  ];
}

const json = (value: unknown) => (value === undefined || value === null ? Prisma.DbNull : (value as Prisma.InputJsonValue));

/**
 * Makes the workflow's file triggers what its latest published file says:
 * new ones are created, changed ones updated in place (same id, so a webhook's
 * URL and secret and a paused state survive), dropped ones deleted; each
 * schedule's BullMQ job scheduler follows. Triggers made over the API are left alone.
 */
export async function syncFileTriggers(app: AppContext, workflow: { id: string; projectId: string }, definition: WorkflowDefinition) {
  const declared = declaredTriggers(definition);
  const existing = await app.db.workflowTrigger.findMany({ where: { workflowId: workflow.id, key: { startsWith: "file:" } } });
  const dropped = existing.filter((trigger) => !declared.some((entry) => entry.key === trigger.key && entry.kind === trigger.kind));
  for (const trigger of dropped) {
    if (trigger.kind === "SCHEDULE") await disarmSchedule(app, trigger.id);
    await app.db.workflowTrigger.delete({ where: { id: trigger.id } });
  }
  for (const entry of declared) {
    const fields = { kind: entry.kind, cron: entry.cron ?? null, timezone: entry.timezone ?? null, modality: entry.modality ?? null, tags: entry.tags ?? [], input: json(entry.input) };
    const trigger = await app.db.workflowTrigger.upsert({
      where: { workflowId_key: { workflowId: workflow.id, key: entry.key } },
      create: { projectId: workflow.projectId, workflowId: workflow.id, key: entry.key, ...fields },
      update: fields,
    });
    if (trigger.kind === "SCHEDULE" && !trigger.paused) await armSchedule(app, trigger);
  }
}

async function findWorkflow(app: AppContext, projectId: string, slug: string) {
  const workflow = await app.db.workflow.findUnique({ where: { projectId_slug: { projectId, slug } } });
  if (!workflow) throw new TesseraError(ErrorCode.NOT_FOUND, `no workflow "${slug}" in this project`);
  const count = await app.db.workflowTrigger.count({ where: { workflowId: workflow.id } });
  if (count >= MAX_TRIGGERS_PER_WORKFLOW) throw new TesseraError(ErrorCode.QUOTA_EXCEEDED, `a workflow may have ${MAX_TRIGGERS_PER_WORKFLOW} triggers`);
  return workflow;
}

function badInput(prefix: string, issues: { path: PropertyKey[]; message: string }[]) {
  const problems = issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message }));
  return new TesseraError(ErrorCode.BAD_USER_INPUT, `${prefix}: ${problems.map((p) => `${p.path || "input"}: ${p.message}`).join("; ")}`, { problems });
}

/** A schedule made over the API: checked like one in a file, armed at once. */
export async function createScheduleTrigger(
  app: AppContext,
  projectId: string,
  request: { slug: string; cron: string; timezone?: string | null; input?: unknown },
): Promise<WorkflowTrigger> {
  const parsed = ScheduleTriggerSchema.safeParse({ cron: request.cron, ...(request.timezone ? { timezone: request.timezone } : {}), input: request.input ?? {} });
  if (!parsed.success) throw badInput("the schedule is refused", parsed.error.issues);
  const workflow = await findWorkflow(app, projectId, request.slug);
  const trigger = await app.db.workflowTrigger.create({
    data: { projectId, workflowId: workflow.id, key: `api:${randomUUID()}`, kind: "SCHEDULE", cron: parsed.data.cron, timezone: parsed.data.timezone ?? null, input: json(parsed.data.input) },
  });
  try {
    await armSchedule(app, trigger);
  } catch (error) {
    await app.db.workflowTrigger.delete({ where: { id: trigger.id } }).catch(() => {});
    throw error;
  }
  return trigger;
}

/** A webhook trigger made over the API; its secret is returned here once. */
export async function createWebhookTrigger(app: AppContext, projectId: string, request: { slug: string; input?: unknown }) {
  const parsed = WebhookTriggerSchema.safeParse(request.input === undefined || request.input === null ? {} : { input: request.input });
  if (!parsed.success) throw badInput("the webhook trigger is refused", parsed.error.issues);
  const workflow = await findWorkflow(app, projectId, request.slug);
  const secret = newWebhookSecret();
  const trigger = await app.db.workflowTrigger.create({
    data: { projectId, workflowId: workflow.id, key: `api:${randomUUID()}`, kind: "WEBHOOK", input: json(parsed.data.input), secretEncrypted: encryptSecret(secret) },
  });
  return { trigger, secret };
}

export async function findProjectTrigger(app: AppContext, projectId: string, id: string): Promise<WorkflowTrigger> {
  const trigger = await app.db.workflowTrigger.findFirst({ where: { id, projectId } });
  if (!trigger) throw new TesseraError(ErrorCode.NOT_FOUND, `no trigger ${id} in this project`);
  return trigger;
}

/** A new signing secret for a webhook trigger, returned once; the old one stops working at once. */
export async function rotateTriggerSecret(app: AppContext, projectId: string, id: string) {
  const trigger = await findProjectTrigger(app, projectId, id);
  if (trigger.kind !== "WEBHOOK") throw new TesseraError(ErrorCode.BAD_USER_INPUT, `trigger ${id} is a ${trigger.kind} trigger; only webhook triggers have a secret`);
  const secret = newWebhookSecret();
  const updated = await app.db.workflowTrigger.update({ where: { id }, data: { secretEncrypted: encryptSecret(secret) } });
  return { trigger: updated, secret };
}

/** Paused: a schedule's job scheduler is removed, a webhook answers 409, an asset trigger ignores assets. */
export async function setTriggerPaused(app: AppContext, projectId: string, id: string, paused: boolean): Promise<WorkflowTrigger> {
  const trigger = await findProjectTrigger(app, projectId, id);
  if (trigger.kind === "SCHEDULE") {
    if (paused) await disarmSchedule(app, id);
    else await armSchedule(app, trigger);
  }
  return app.db.workflowTrigger.update({ where: { id }, data: { paused } });
}

/**
 * Deletes a trigger (and its schedule). One declared in the file comes back
 * at the next publish that still declares it: remove it from the file instead.
 */
export async function deleteTrigger(app: AppContext, projectId: string, id: string): Promise<WorkflowTrigger> {
  const trigger = await findProjectTrigger(app, projectId, id);
  if (trigger.kind === "SCHEDULE") await disarmSchedule(app, id);
  await app.db.workflowTrigger.delete({ where: { id } });
  return trigger;
}
