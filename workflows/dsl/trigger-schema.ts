import { CronExpressionParser } from "cron-parser";
import { z } from "zod";
import { modalitySchema } from "../../services/assets/modality.ts";

/** A cron pattern as BullMQ's job schedulers read it (cron-parser): 5 fields, or 6 with seconds first. */
export const CronSchema = z.string().superRefine((pattern, context) => {
  try {
    CronExpressionParser.parse(pattern);
  } catch (error) {
    context.addIssue({ code: "custom", message: `not a cron pattern: ${error instanceof Error ? error.message : String(error)}` });
  }
});

/** An IANA time zone name, e.g. Europe/Paris; UTC when left out. */
export const TimeZoneSchema = z.string().superRefine((zone, context) => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
  } catch {
    context.addIssue({ code: "custom", message: `unknown time zone "${zone}"; use an IANA name like Europe/Paris` });
  }
});

export const ScheduleTriggerSchema = z
  .object({
    cron: CronSchema.describe('When to run: "0 9 * * 1-5" (5 fields), or 6 with seconds first.'),
    timezone: TimeZoneSchema.optional().describe("IANA time zone the pattern is read in; default UTC."),
    input: z.record(z.string(), z.unknown()).default({}).describe("The input of each run."),
  })
  .strict();

export const WebhookTriggerSchema = z
  .object({
    input: z
      .record(z.string(), z.unknown())
      .optional()
      .describe("Input name to value, expressions over `body` (the parsed JSON) and `headers`; without it the body is the input."),
  })
  .strict();

export const AssetTriggerSchema = z
  .object({
    modality: modalitySchema.optional().describe("Only assets of this modality."),
    tags: z.array(z.string()).default([]).describe("Only assets carrying every one of these tags."),
    input: z
      .record(z.string(), z.unknown())
      .optional()
      .describe("Input name to value, expressions over `asset` (id, modality, tags, metadata); without it the asset's id goes to the one asset input."),
  })
  .strict();

/** `on:` of a workflow file: what starts its runs besides `runWorkflow`. */
export const TriggersSchema = z
  .object({
    schedule: z.array(ScheduleTriggerSchema).max(20).optional().describe("Cron schedules (BullMQ job schedulers)."),
    webhook: WebhookTriggerSchema.optional().describe("A signed URL that starts a run per POST."),
    asset: z.array(AssetTriggerSchema).max(20).optional().describe("Run when an asset matching one of these becomes READY."),
  })
  .strict();

export type Triggers = z.infer<typeof TriggersSchema>;
export type ScheduleTrigger = z.infer<typeof ScheduleTriggerSchema>;
export type AssetTrigger = z.infer<typeof AssetTriggerSchema>;

/** The roots a trigger's input mapping may read. */
export const TRIGGER_SCOPE_ROOTS = { webhook: ["body", "headers"], asset: ["asset"] } as const;
