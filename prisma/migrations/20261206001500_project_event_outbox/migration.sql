-- Project events (webhooks, asset triggers) in a transactional outbox: the change that makes an event writes its row
-- in the same transaction, and a relay moves rows into the `project-event` queue and deletes them after. The event was
-- queued after the commit before, so a process that stopped between the two, or a Redis that refused the add, lost it.
-- `relayAfter` is a lease: a relay takes rows by moving it forward, so a relay that stopped midway lets them go again.
-- Times are UTC wall time, as Prisma stores DateTime, whatever the session's TimeZone: rows are written by triggers.
CREATE TABLE "ProjectEventOutbox" (
    "id" TEXT NOT NULL DEFAULT gen_random_uuid()::text,
    "projectId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "subjectId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "relayAfter" TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),

    CONSTRAINT "ProjectEventOutbox_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "ProjectEventOutbox_relayAfter_idx" ON "ProjectEventOutbox"("relayAfter");

-- The process that wrote an event queues it right after its commit, by its subject (the run, job or asset).
CREATE INDEX "ProjectEventOutbox_subjectId_idx" ON "ProjectEventOutbox"("subjectId");

ALTER TABLE "ProjectEventOutbox" ADD CONSTRAINT "ProjectEventOutbox_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A run's end or wait is an event for the project's webhook subscriptions to it. A trigger, because the engine moves a
-- run's status in several statements and functions. Only for a project subscribed at the time: most runs of most
-- projects are heard by nobody. The same condition as subscribedSql in services/webhooks/webhook-subscriptions.ts.
CREATE FUNCTION tessera_outbox_run_event() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS E'
DECLARE
  event text := ''run.'' || lower(NEW.status::text)\073
BEGIN
  IF EXISTS (SELECT 1 FROM "WebhookSubscription" s WHERE s."projectId" = NEW."projectId" AND NOT s.paused AND event = ANY(s.events)) THEN
    INSERT INTO "ProjectEventOutbox" ("projectId", type, "subjectId") VALUES (NEW."projectId", event, NEW.id)\073
  END IF\073
  RETURN NULL\073
END
';

CREATE TRIGGER "Run_project_event" AFTER UPDATE OF status ON "Run"
  FOR EACH ROW WHEN (NEW.status IN ('SUCCEEDED', 'FAILED', 'WAITING') AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION tessera_outbox_run_event();
