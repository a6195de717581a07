import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { ingestFromUrl, ingestText } from "../../services/assets/ingest-sources.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { defineStepType } from "./step-type.ts";

const POLL_MS = 250;

/**
 * Ingests text or a URL into the project, like the `ingest` mutation, and by
 * default waits until the asset is indexed, so later steps can search it.
 * The step's row id is the idempotency key: a retried step ingests once.
 */
export const ingestStep = defineStepType({
  uses: "ingest",
  description: "Ingest text or a URL as an asset (exactly one); waits until it is indexed unless `wait: false`.",
  with: z
    .object({
      text: z.string().min(1).optional(),
      url: z.url({ protocol: /^https?$/ }).optional(),
      tags: z.array(z.string()).default([]),
      metadata: z.record(z.string(), z.unknown()).default({}),
      wait: z.boolean().default(true).describe("Wait until the asset is READY (indexed)."),
    })
    .strict()
    .refine((input) => (input.text === undefined) !== (input.url === undefined), { message: "give exactly one of text or url" }),
  output: z
    .object({
      assetId: z.string(),
      modality: z.string(),
      status: z.string(),
      jobId: z.string(),
    })
    .strict(),
  async run(input, context) {
    const { app, projectId } = context;
    const options = { tags: input.tags, metadata: input.metadata, idempotencyKey: `workflow-step:${context.stepRunId}` };
    const { asset, job } = input.text !== undefined
      ? await ingestText(app, projectId, input.text, options)
      : await ingestFromUrl(app, projectId, input.url!, options);
    context.log(`asset ${asset.id} (${asset.modality}), ingest job ${job.id}`);
    if (!input.wait) return { assetId: asset.id, modality: asset.modality, status: asset.status, jobId: job.id };
    while (true) {
      const current = await app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
      if (current.status === "READY") return { assetId: current.id, modality: current.modality, status: current.status, jobId: job.id };
      if (current.status === "FAILED") {
        const error = (current.error as { code?: string; message?: string } | null) ?? {};
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, `ingesting asset ${asset.id} failed: ${error.message ?? "unknown error"}`, { assetId: asset.id, cause: error.code });
      }
      await sleep(POLL_MS, undefined, { signal: context.signal });
    }
  },
});
