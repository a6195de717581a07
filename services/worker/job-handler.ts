import type { AppContext } from "../app/app-context.ts";
import type { ErrorRecord } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { JobPayload, QueueName } from "../queue/job-payloads.ts";
import type { JobTracker } from "./job-tracker.ts";

export type JobHandlerContext = {
  app: AppContext;
  tracker: JobTracker;
  logger: Logger;
  attempt: number;
};

/** What a worker runs for one queue. */
export type JobHandler<Q extends QueueName> = {
  /** False for jobs that keep their state in rows of their own (workflow steps): no Job row is read or written. */
  tracked?: boolean;
  run(payload: JobPayload<Q>, context: JobHandlerContext): Promise<{ output?: unknown; usage?: unknown } | void>;
  /** Called once, after the last attempt failed: undo or mark what the job was about. */
  onFinalFailure?(payload: JobPayload<Q>, error: ErrorRecord, app: AppContext): Promise<void>;
};
