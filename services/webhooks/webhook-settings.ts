import { z } from "zod";

/**
 * Settings of signed webhooks, both ways. Read from the environment on each
 * call (like the workflow limits), so an operator can tune them per process.
 */
const SettingsSchema = z.object({
  /** Key that encrypts webhook secrets at rest (AES-256-GCM of its SHA-256); required in production. */
  WEBHOOK_SECRETS_KEY: z.string().min(16).optional(),
  /** How far a signature's timestamp may be from now, in seconds, before a request is refused as a replay. */
  WEBHOOK_TOLERANCE_SECONDS: z.coerce.number().int().positive().default(300),
  /** Largest body an incoming webhook trigger accepts, in bytes. */
  WEBHOOK_TRIGGER_MAX_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Tries of one outbound delivery, the first included (BullMQ attempts). */
  WEBHOOK_DELIVERY_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(15),
  /** Delay before the second try, in ms; doubles each try (15 tries from 30 s: about 68 hours in all, the last gap about 34 hours). */
  WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(1).default(30_000),
  /** Deadline of one outbound delivery's HTTP request, in ms. */
  WEBHOOK_DELIVERY_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
});

export type WebhookSettings = z.infer<typeof SettingsSchema>;

export function webhookSettings(env: NodeJS.ProcessEnv = process.env): WebhookSettings {
  return SettingsSchema.parse(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== "")));
}
