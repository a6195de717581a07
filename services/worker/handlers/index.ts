import type { QueueName } from "../../queue/job-payloads.ts";
import type { JobHandler } from "../job-handler.ts";
import { generateHandler } from "./generate-handler.ts";
import { ingestHandler } from "./ingest-handler.ts";
import { workflowRunHandler } from "./workflow-run-handler.ts";
import { workflowStepHandler } from "./workflow-step-handler.ts";
import { projectEventHandler, webhookDeliveryHandler, workflowTriggerHandler } from "./trigger-handlers.ts";

/** Which handler serves which queue. A queue without a handler here is served by no worker. */
export const jobHandlers: { [Q in QueueName]?: JobHandler<Q> } = {
  ingest: ingestHandler,
  generate: generateHandler,
  "workflow-run": workflowRunHandler,
  "workflow-step": workflowStepHandler,
  "workflow-trigger": workflowTriggerHandler,
  "project-event": projectEventHandler,
  "webhook-delivery": webhookDeliveryHandler,
};
