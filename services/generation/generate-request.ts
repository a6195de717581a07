import { z } from "zod";
import type { Asset, Database } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { checkTokenBudget, type TokenBudgetHost } from "../limits/token-budget.ts";
import type { ModelRuntime } from "../models/model-runtime.ts";
import { modelRouterFor, type RouterHost } from "./app-model-router.ts";

export const generateTasks = ["TEXT", "CAPTION", "SPEECH", "TRANSCRIPT", "IMAGE"] as const;
export type GenerateTask = (typeof generateTasks)[number];

export const MAX_ATTACHMENTS = 16;
export const MAX_PROMPT_CHARS = 100_000;
/** espeak-ng and TTS exports read text in one go: keep a spoken clip to a few minutes. */
export const MAX_SPEECH_CHARS = 5_000;

/** What `generate` asks for: stored as the Job's input, read by the worker and by the generate.* steps. */
export const GenerateRequestSchema = z.object({
  task: z.enum(generateTasks),
  prompt: z.string().max(MAX_PROMPT_CHARS).optional(),
  /** Instructions before the prompt (TEXT). */
  system: z.string().max(MAX_PROMPT_CHARS).optional(),
  attachments: z.array(z.uuid()).max(MAX_ATTACHMENTS).default([]),
  /** A model alias; default per task (see defaultAliasFor). */
  model: z.string().min(1).max(200).optional(),
  maxTokens: z.number().int().positive().max(32_768).optional(),
  temperature: z.number().min(0).max(2).optional(),
  /** SPEECH: a voice of the speech model; IMAGE: e.g. "1024x1024". */
  voice: z.string().max(100).optional(),
  size: z.string().regex(/^\d{2,5}x\d{2,5}$/).optional(),
});

export type GenerateRequest = z.infer<typeof GenerateRequestSchema>;

/** The alias a task uses when the request names none. */
export function defaultAliasFor(task: GenerateTask, hasImages: boolean, has: (alias: string) => boolean): string {
  switch (task) {
    case "TEXT":
      return hasImages && has("llm.vision") ? "llm.vision" : "llm.default";
    case "CAPTION":
      return has("caption.default") ? "caption.default" : "llm.vision";
    case "SPEECH":
      return "speech.default";
    case "TRANSCRIPT":
      // The built-in offline transcriber when nobody configured one (a worker's Whisper export comes first: see transcriptOf).
      return has("transcribe.default") ? "transcribe.default" : "transcribe.offline";
    case "IMAGE":
      return "image.default";
  }
}

const bad = (message: string, details?: Record<string, unknown>) => new TesseraError(ErrorCode.BAD_USER_INPUT, message, details);

/**
 * A job that starts within this many ms of its mutation's token-budget check is not checked again: it counts as a
 * generation already running, which finishes and is charged even when it ends the period over budget. A queued
 * backlog older than this is still refused once the budget is spent. Saves each prompt job a Redis GET.
 */
export const BUDGET_RECHECK_AFTER_MS = 1000;

/** What checking a request reads: the project's assets, the router's aliases and the worker's own models. */
export type GenerateRequestChecks = RouterHost & TokenBudgetHost & { db: Database; models: Pick<ModelRuntime, "list"> };

/**
 * Everything that can be checked before a job exists: the shape, the prompt
 * a task needs, that each attachment is the project's and of a modality the
 * task takes, that a model can serve it, and that the project's token budget
 * is not spent (QUOTA_EXCEEDED). A bad request creates nothing.
 */
export async function checkGenerateRequest(
  app: GenerateRequestChecks,
  projectId: string,
  input: unknown,
  options: { budgetCheckedAt?: number | undefined } = {},
): Promise<{ request: GenerateRequest; assets: Asset[] }> {
  const parsed = GenerateRequestSchema.safeParse(input);
  if (!parsed.success) {
    throw bad(`invalid generate input: ${parsed.error.issues.map((issue) => `${issue.path.join(".") || "input"}: ${issue.message}`).join("; ")}`);
  }
  const request = parsed.data;
  const prompt = request.prompt?.trim() ?? "";
  if (["TEXT", "SPEECH", "IMAGE"].includes(request.task) && prompt.length === 0) throw bad(`task ${request.task} needs a prompt`);
  if (request.task === "SPEECH" && prompt.length > MAX_SPEECH_CHARS) throw bad(`speech text is longer than ${MAX_SPEECH_CHARS} characters`);
  if (new Set(request.attachments).size !== request.attachments.length) throw bad("an attachment is listed twice");

  // Most requests attach nothing: no query then (the generate mutation and its job both check).
  const assets = request.attachments.length ? await app.db.asset.findMany({ where: { projectId, id: { in: request.attachments } } }) : [];
  const missing = request.attachments.filter((id) => !assets.some((asset) => asset.id === id));
  if (missing.length) throw new TesseraError(ErrorCode.NOT_FOUND, `no asset ${missing.join(", ")} in this project`);
  const ordered = request.attachments.map((id) => assets.find((asset) => asset.id === id)!);
  // An asset whose ingest failed still has its bytes (a missing encoder fails ingest too); bytes that do not decode fail later as CORRUPT_MEDIA.

  const modalities = ordered.map((asset) => asset.modality);
  if (request.task === "CAPTION" && (ordered.length !== 1 || !["IMAGE", "VIDEO"].includes(modalities[0]!))) {
    throw bad("CAPTION takes exactly one IMAGE or VIDEO attachment");
  }
  if (request.task === "TRANSCRIPT" && (ordered.length !== 1 || !["AUDIO", "VIDEO"].includes(modalities[0]!))) {
    throw bad("TRANSCRIPT takes exactly one AUDIO or VIDEO attachment");
  }
  if ((request.task === "SPEECH" || request.task === "IMAGE") && ordered.length > 0) throw bad(`${request.task} takes no attachments`);

  const router = modelRouterFor(app);
  if (request.model) router.alias(request.model); // MODEL_NOT_FOUND for an unknown alias
  else if (!(request.task === "TRANSCRIPT" && app.models.list().some((model) => model.task === "transcribe"))) {
    router.alias(defaultAliasFor(request.task, modalities.includes("IMAGE") || modalities.includes("VIDEO"), (alias) => router.hasAlias(alias)));
  }
  const sinceBudgetCheck = options.budgetCheckedAt === undefined ? Infinity : Date.now() - options.budgetCheckedAt;
  // A clock that reads before the check (another host's) counts as not recent.
  if (!(sinceBudgetCheck >= 0 && sinceBudgetCheck < BUDGET_RECHECK_AFTER_MS)) await checkTokenBudget(app, projectId);
  return { request, assets: ordered };
}
