import { randomUUID } from "node:crypto";
import type { Logger } from "../core/logger.ts";

/**
 * What a project can be told about (outbound webhooks) and react to (asset
 * triggers). Whoever makes one happen emits it onto the `project-event`
 * queue; a worker fans it out. The queue is the event bus here because these
 * must not be lost while nobody listens, as a pub/sub message would be.
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

/**
 * Queues the event. Never throws: the row that changed is the truth and its
 * writer must not fail because Redis did; a lost event is logged.
 */
/** What emitting needs of JobQueues (named structurally: job-queues.ts imports this file's contract). */
type EventQueues = {
  enqueue(name: "project-event", payload: { jobId: string; eventId: string; at: string } & ProjectEvent, options: { jobId: string; attempts: number }): Promise<unknown>;
};

export async function emitProjectEvent(deps: { queues: EventQueues; logger: Logger }, event: ProjectEvent): Promise<void> {
  const eventId = randomUUID();
  try {
    await deps.queues.enqueue("project-event", { jobId: eventId, eventId, ...event, at: new Date().toISOString() }, { jobId: eventId, attempts: 5 });
  } catch (error) {
    deps.logger.error({ err: error, event }, "could not queue a project event; webhooks and triggers miss it");
  }
}
