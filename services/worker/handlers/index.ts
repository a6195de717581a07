import type { QueueName } from "../../queue/job-payloads.ts";
import type { JobHandler } from "../job-handler.ts";
import { ingestHandler } from "./ingest-handler.ts";

/** Which handler serves which queue. A queue without a handler here is served by no worker. */
export const jobHandlers: { [Q in QueueName]?: JobHandler<Q> } = {
  ingest: ingestHandler,
};
