import { z } from "zod";
import { PROJECT_EVENT_TYPES } from "./project-events.ts";

/**
 * The contract between producers (gateway, engine) and consumers (workers):
 * one zod schema per queue. Both sides parse with it, so a payload that does
 * not match fails loudly at the producer instead of deep inside a worker.
 */
export const jobPayloads = {
  ingest: z.object({
    jobId: z.uuid(),
    projectId: z.uuid(),
    assetId: z.uuid(),
  }),
  generate: z.object({
    jobId: z.uuid(),
    projectId: z.uuid(),
    /**
     * The request as the mutation checked and stored it (the Job row's input), so the worker need not read the row
     * for it; a job re-enqueued from its row (the reconciler) has none, and its worker reads the row.
     */
    request: z.record(z.string(), z.unknown()).optional(),
    /** When the mutation checked the token budget (ms since the epoch): a job run soon after is not checked again. */
    checkedAt: z.number().optional(),
  }),
  /** Advance a workflow run (start, resume, a child run's end); `jobId` is the BullMQ job id. */
  "workflow-run": z.object({
    jobId: z.string().min(1),
    runId: z.uuid(),
    projectId: z.uuid(),
  }),
  /** Run one step of a workflow run; `jobId` is derived from the run and the step's key. */
  "workflow-step": z.object({
    jobId: z.string().min(1),
    runId: z.uuid(),
    stepRunId: z.uuid(),
    projectId: z.uuid(),
  }),
  /** Fire a `schedule` trigger (added by its BullMQ job scheduler); `jobId` names the scheduler. */
  "workflow-trigger": z.object({
    jobId: z.string().min(1),
    triggerId: z.uuid(),
    projectId: z.uuid(),
  }),
  /** Something happened in a project (project-events.ts): fan it out to webhooks and asset triggers. */
  "project-event": z.object({
    jobId: z.string().min(1),
    eventId: z.uuid(),
    type: z.enum(PROJECT_EVENT_TYPES),
    subjectId: z.string().min(1),
    at: z.string(),
  }),
  /** Send one outbound webhook delivery; attempts and backoff are the retries. */
  "webhook-delivery": z.object({
    jobId: z.string().min(1),
    deliveryId: z.uuid(),
  }),
} satisfies Record<string, z.ZodType>;

export type QueueName = keyof typeof jobPayloads;
export type JobPayload<Q extends QueueName> = z.infer<(typeof jobPayloads)[Q]>;
export const queueNames = Object.keys(jobPayloads) as QueueName[];
