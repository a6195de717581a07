import ipaddr from "ipaddr.js";
import type { Config } from "../core/config.ts";
import { Prisma, type Database, type WebhookSubscription } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { isPublicAddress } from "../assets/safe-fetch.ts";
import { PROJECT_EVENT_TYPES, type ProjectEventType } from "../queue/project-events.ts";
import { encryptSecret, newWebhookSecret } from "./secret-box.ts";

export type SubscriptionRequest = { url: string; events: string[]; description?: string | null };

/** Most subscriptions one project may have: each event is sent to every one of them. */
export const MAX_SUBSCRIPTIONS_PER_PROJECT = 50;

/**
 * A URL that can be told about events: http(s), no credentials in it, and not
 * an address that is plainly private unless URL_ALLOW_HOSTS lists it (names
 * are checked again at every delivery, by the SSRF guard, after DNS).
 */
function checkUrl(url: string, config: Pick<Config, "URL_ALLOW_HOSTS">): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, "url: not a valid URL", { field: "url" });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new TesseraError(ErrorCode.BAD_USER_INPUT, "url: must be http or https", { field: "url" });
  if (parsed.username || parsed.password) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "url: must not carry credentials; the signature authenticates Tessera", { field: "url" });
  const host = parsed.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
  const allowed = config.URL_ALLOW_HOSTS.includes(host) || config.URL_ALLOW_HOSTS.includes(`${host}:${port}`);
  const privateLiteral = (ipaddr.isValid(host) && !isPublicAddress(host)) || host === "localhost";
  if (privateLiteral && !allowed) {
    throw new TesseraError(ErrorCode.URL_NOT_ALLOWED, `url: ${host} is a private address; list it in URL_ALLOW_HOSTS to allow it`, { field: "url" });
  }
  return parsed;
}

function checkEvents(events: string[]): ProjectEventType[] {
  const unknown = events.filter((event) => !(PROJECT_EVENT_TYPES as readonly string[]).includes(event));
  if (unknown.length) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `events: unknown ${unknown.join(", ")}; known: ${PROJECT_EVENT_TYPES.join(", ")}`, { field: "events" });
  if (!events.length) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "events: name at least one", { field: "events" });
  return [...new Set(events)] as ProjectEventType[];
}

/** Creates a subscription; its signing secret is returned here once and stored only encrypted. */
export async function createWebhookSubscription(
  deps: { db: Database; config: Pick<Config, "URL_ALLOW_HOSTS"> },
  projectId: string,
  request: SubscriptionRequest,
): Promise<{ subscription: WebhookSubscription; secret: string }> {
  const url = checkUrl(request.url, deps.config);
  const events = checkEvents(request.events);
  const count = await deps.db.webhookSubscription.count({ where: { projectId } });
  if (count >= MAX_SUBSCRIPTIONS_PER_PROJECT) throw new TesseraError(ErrorCode.QUOTA_EXCEEDED, `a project may have ${MAX_SUBSCRIPTIONS_PER_PROJECT} webhook subscriptions`);
  const secret = newWebhookSecret();
  const subscription = await deps.db.webhookSubscription.create({
    data: { projectId, url: url.href, events, description: request.description ?? null, secretEncrypted: encryptSecret(secret) },
  });
  return { subscription, secret };
}

export async function findProjectSubscription(db: Database, projectId: string, id: string): Promise<WebhookSubscription> {
  const found = await db.webhookSubscription.findFirst({ where: { id, projectId } });
  if (!found) throw new TesseraError(ErrorCode.NOT_FOUND, `no webhook subscription ${id} in this project`);
  return found;
}

/** Pausing keeps the subscription and its log; events that happen while paused are not sent. */
export async function setSubscriptionPaused(db: Database, projectId: string, id: string, paused: boolean) {
  await findProjectSubscription(db, projectId, id);
  return db.webhookSubscription.update({ where: { id }, data: { paused } });
}

/** Deletes the subscription and its delivery log; retries still queued find no row and stop. */
export async function deleteWebhookSubscription(db: Database, projectId: string, id: string) {
  const found = await findProjectSubscription(db, projectId, id);
  await db.webhookSubscription.delete({ where: { id } });
  return found;
}

/**
 * SQL: whether the project whose id `projectId` is (a column or a value) has a subscription, not
 * paused, that asks for `type`. Appended to the statement that commits an event's state change
 * (a job's end: services/worker/job-tracker.ts), it answers in the same round trip whether the
 * event needs fanning out at all; it reads the subscriptions committed before that statement, so a
 * subscription created before the change is made gets its event, and none is queued for the
 * projects (most of them) that have no subscription for it.
 */
export function subscribedSql(projectId: Prisma.Sql, type: ProjectEventType): Prisma.Sql {
  return Prisma.sql`EXISTS (SELECT 1 FROM "WebhookSubscription" s WHERE s."projectId" = ${projectId} AND NOT s.paused AND ${type} = ANY(s.events))`;
}
