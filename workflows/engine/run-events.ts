import type { AppContext } from "../../services/app/app-context.ts";
import type { RunEvent } from "../../services/queue/event-bus.ts";
import { workflowRunsEnded } from "../../services/observability/metrics.ts";
import { relayProjectEvents, runStatusEvent } from "../../services/queue/project-events.ts";

/** What happened, as `runEvents` subscribers see it in `type`. */
export const RunEventType = {
  RUN_STATUS: "RUN_STATUS",
  STEP_STARTED: "STEP_STARTED",
  STEP_FINISHED: "STEP_FINISHED",
  STEP_FAILED: "STEP_FAILED",
  STEP_SKIPPED: "STEP_SKIPPED",
  STEP_WAITING: "STEP_WAITING",
  STEP_RETRYING: "STEP_RETRYING",
  LOG: "LOG",
  TOKEN: "TOKEN",
} as const;
export type RunEventType = (typeof RunEventType)[keyof typeof RunEventType];

export const TERMINAL_RUN_STATUSES = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
export const TERMINAL_STEP_STATUSES = new Set(["SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"]);

/** An event before it is stamped with its time. */
export type RunEventDraft = Omit<RunEvent, "at"> & { type: RunEventType };

export function publishRunEvent(app: AppContext, event: RunEventDraft) {
  app.events.publish("run", event.runId, { ...event, at: new Date().toISOString() });
  // Run ends and waits are project events too (outbound webhooks): the status change that was just committed wrote
  // one into the outbox if the project subscribes to it (a trigger on Run); relayProjectEvents never throws.
  if (event.type === RunEventType.RUN_STATUS && runStatusEvent(event.status)) void relayProjectEvents(app, { subjectId: event.runId });
  if (event.type === RunEventType.RUN_STATUS && event.status && TERMINAL_RUN_STATUSES.has(event.status)) workflowRunsEnded.inc({ status: event.status });
}
