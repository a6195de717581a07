import { sql, UTC_NOW, type Database } from "../core/database.ts";
import type { Logger } from "../core/logger.ts";

/**
 * What a project can be told about (outbound webhooks) and react to (asset
 * triggers). The change that makes one writes it into the outbox in its own
 * transaction (services/assets/asset-records.ts, services/worker/job-tracker.ts,
 * a trigger on Run); the relay below moves it onto the `project-event` queue,
 * and a worker fans it out. A queue, not pub/sub: these must not be lost while
 * nobody listens.
 */
export const PROJECT_EVENT_TYPES = ["run.succeeded", "run.failed", "run.waiting", "job.succeeded", "job.failed", "asset.ready"] as const;
export type ProjectEventType = (typeof PROJECT_EVENT_TYPES)[number];

/** The run, job or asset row the event is about (its id); the handler reads the row for its project and its state. */
export type ProjectEvent = { type: ProjectEventType; subjectId: string };

const RUN_EVENT_BY_STATUS: Record<string, ProjectEventType> = { SUCCEEDED: "run.succeeded", FAILED: "run.failed", WAITING: "run.waiting" };

/** The event a run's new status makes, if any. */
export function runStatusEvent(status: string | undefined): ProjectEventType | undefined {
  return status ? RUN_EVENT_BY_STATUS[status] : undefined;
}

/** What relaying needs of JobQueues (named structurally: job-queues.ts imports this file's contract). */
type EventQueues = {
  enqueueBulk(
    name: "project-event",
    jobs: Array<{ payload: { jobId: string; eventId: string; at: string } & ProjectEvent; options: { jobId: string; attempts: number } }>,
  ): Promise<unknown>;
};

/** Rows taken per statement; a backlog goes in several. */
const RELAY_BATCH = 200;
/** How long a relay holds the rows it took: one that stopped midway lets them go after it. */
const RELAY_LEASE = "30 seconds";

/** The rows a relay may take now (its lease long gone), oldest first, none another relay holds. */
function takeEvents(where: string) {
  return `
  UPDATE "ProjectEventOutbox" SET "relayAfter" = ${UTC_NOW} + interval '${RELAY_LEASE}'
  WHERE id IN (
    SELECT id FROM "ProjectEventOutbox" WHERE ${where} AND "relayAfter" <= ${UTC_NOW}
    ORDER BY "createdAt" LIMIT ${RELAY_BATCH} FOR UPDATE SKIP LOCKED)
  RETURNING id, type, "subjectId", "createdAt"`;
}
const TAKE = {
  subject: { name: "tessera_take_subject_events", text: takeEvents(`"subjectId" = $1`) },
  projects: { name: "tessera_take_projects_events", text: takeEvents(`"projectId" = ANY($1::text[])`) },
  all: { name: "tessera_take_project_events", text: takeEvents("true") },
};

/**
 * Which events a relay takes: those of one run, job or asset (right after the commit that wrote them: the process
 * that made them queues them on its own queue prefix), of some projects (a reconciler scoped to them, as tests are),
 * or all.
 */
export type RelayScope = { subjectId: string } | { projectIds: string[] } | "all";

const RELEASE = `UPDATE "ProjectEventOutbox" SET "relayAfter" = ${UTC_NOW} WHERE id = ANY($1::text[])`;

type OutboxRow = { id: string; type: ProjectEventType; subjectId: string; createdAt: Date };

/**
 * Moves the events waiting in the outbox (ProjectEventOutbox, written with the changes that make them) into the
 * `project-event` queue, each under its row's id as job id and event id, and deletes them once queued. Called right
 * after a commit that may have written one, and by each reconciler pass for what a stopped process or a Redis outage
 * left. Never throws: rows that could not be queued stay for the next relay. At least once: a relay that stops
 * between the add and the delete leaves rows that the next one adds again under the same job id (BullMQ keeps one
 * job per id while it is kept) and event id (a webhook delivery per subscription and event id, an asset trigger's
 * run once per asset). Returns how many events it queued.
 */
export async function relayProjectEvents(deps: { db: Database; queues: EventQueues; logger: Logger }, scope: RelayScope): Promise<number> {
  const [take, values] =
    scope === "all" ? [TAKE.all, []] : "subjectId" in scope ? [TAKE.subject, [scope.subjectId]] : [TAKE.projects, [scope.projectIds]];
  let relayed = 0;
  let taken: string[] = [];
  try {
    for (;;) {
      const rows = await sql<OutboxRow>(deps.db, take.text, values, take.name);
      if (rows.length === 0) return relayed;
      taken = rows.map((row) => row.id);
      await deps.queues.enqueueBulk(
        "project-event",
        rows.map((row) => ({
          payload: { jobId: row.id, eventId: row.id, type: row.type, subjectId: row.subjectId, at: row.createdAt.toISOString() },
          options: { jobId: row.id, attempts: 5 },
        })),
      );
      await sql(deps.db, `DELETE FROM "ProjectEventOutbox" WHERE id = ANY($1::text[])`, [taken], "tessera_relayed_project_events");
      taken = [];
      relayed += rows.length;
      if (rows.length < RELAY_BATCH) return relayed;
    }
  } catch (error) {
    deps.logger.warn({ err: error }, "project events stay in the outbox: the next relay or reconciler pass queues them");
    // Let go of them now rather than when the lease ends (if this fails too, the lease ends anyway).
    if (taken.length) await sql(deps.db, RELEASE, [taken], "tessera_release_project_events").catch(() => {});
    return relayed;
  }
}
