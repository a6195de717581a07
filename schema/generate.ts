import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { Prisma, SQL_UTC_NOW, constraintViolation, sql, type Database, type Job } from "../services/core/database.ts";
import { ErrorCode, TesseraError } from "../services/core/errors.ts";
import { checkGenerateRequest, GenerateRequestSchema, generateTasks } from "../services/generation/generate-request.ts";
import { checkConcurrentJobs } from "../services/limits/project-quotas.ts";
import { builder } from "./builder.ts";
import { JobRef } from "./jobs.ts";

/**
 * The GENERATE job's row in one INSERT on node-postgres (`sql`): every generate request makes it, and
 * through Prisma, raw or not, a statement costs 1-3 ms of the event loop (README, bench "generation"). The row is
 * returned as written (every column set here). A clash on the idempotency key throws and writes nothing.
 * With `openBelow`, the same statement counts the project's open jobs first and inserts only while
 * they are fewer (QUOTA_CONCURRENT_JOBS, one round trip instead of two): null when they are not.
 * "Open" is what checkConcurrentJobs (services/limits/project-quotas.ts) counts: QUEUED or RUNNING.
 */
async function createGenerateJob(db: Database, projectId: string, input: object, idempotencyKey: string | null, openBelow?: number): Promise<Job | null> {
  const open = openBelow === undefined ? Prisma.sql`0` : Prisma.sql`(SELECT count(*)::int FROM "Job" WHERE "projectId" = ${projectId} AND status::text IN ('QUEUED', 'RUNNING'))`;
  const statement = Prisma.sql`
    INSERT INTO "Job" (id, "projectId", kind, status, progress, input, attempts, "idempotencyKey", "createdAt", "updatedAt")
    SELECT ${randomUUID()}, ${projectId}, 'GENERATE', 'QUEUED', 0, ${JSON.stringify(input)}::jsonb, 0, ${idempotencyKey}, ${SQL_UTC_NOW}, ${SQL_UTC_NOW}
    WHERE ${open} < ${openBelow ?? 1}
    RETURNING *`;
  // Prepared once per connection (its text is one of two): later calls send no statement text, and PostgreSQL, on the
  // same two cores, skips parsing and planning the count and the insert.
  const [job] = await sql<Job>(db, statement.text, statement.values, openBelow === undefined ? "generate-job-insert" : "generate-job-insert-under-quota");
  return job ?? null;
}

const GenerateTaskEnum = builder.enumType("GenerateTask", {
  description: "TEXT: answer a prompt; CAPTION: describe an image or video; SPEECH: speak the prompt; TRANSCRIPT: speech to text; IMAGE: draw the prompt.",
  values: {
    TEXT: { description: "Answer `prompt` (with `system` and attachments) with text, streamed as tokens." },
    CAPTION: { description: "Describe the attached image or video in text." },
    SPEECH: { description: "Speak `prompt`: the output is a new AUDIO asset." },
    TRANSCRIPT: { description: "Write down what is said in the attached audio or video." },
    IMAGE: { description: "Draw `prompt`: the output is a new IMAGE asset." },
  } satisfies Record<(typeof generateTasks)[number], { description: string }>,
});

const GenerateInput = builder.inputType("GenerateInput", {
  description: "What to generate, from what, with which model.",
  fields: (t) => ({
    task: t.field({ type: GenerateTaskEnum, required: true, description: "What kind of output to make." }),
    prompt: t.string({ required: false, description: "Required for TEXT, SPEECH and IMAGE; an optional instruction for CAPTION." }),
    system: t.string({ required: false, description: "Instructions given to the model before the prompt (TEXT)." }),
    attachments: t.idList({
      required: false,
      description: "The project's assets: images go to the model as images, audio and video as transcripts and frames.",
    }),
    model: t.string({ required: false, description: "A model alias such as `llm.default` or `llm.vision`; default per task." }),
    maxTokens: t.int({ required: false, description: "The most tokens the model may write (TEXT, CAPTION)." }),
    temperature: t.float({ required: false, description: "Sampling temperature, 0 to 2: lower is more predictable." }),
    voice: t.string({ required: false, description: "SPEECH: a voice of the speech model." }),
    size: t.string({ required: false, description: "IMAGE: WIDTHxHEIGHT, e.g. 1024x1024." }),
    idempotencyKey: t.string({
      required: false,
      description: "A retried request with the same key and the same input gets the first job back; another input under a used key is IDEMPOTENCY_CONFLICT.",
    }),
  }),
});

builder.mutationField("generate", (t) =>
  t.withAuth({ project: true }).field({
    type: JobRef,
    description: "Starts a generation job. Text streams over `jobEvents`; the job's output is text or the id of a new asset.",
    args: { input: t.arg({ type: GenerateInput, required: true, description: "The task, prompt, attachments and model." }) },
    resolve: async (_root, { input }, context) => {
      const { app, project } = context;
      const { idempotencyKey, ...fields } = input;
      // GraphQL nulls mean "not given".
      const given = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== null && value !== undefined));
      const answerFor = (previous: Job) => {
        if (previous.kind !== "GENERATE") throw new TesseraError(ErrorCode.CONFLICT, "this idempotency key was used for another operation");
        if (!sameGenerateRequest(previous.input, given)) throw idempotencyConflict(idempotencyKey!, previous.id);
        return previous;
      };
      if (idempotencyKey) {
        const previous = await app.db.job.findUnique({ where: { projectId_idempotencyKey: { projectId: project.id, idempotencyKey } } });
        if (previous) return answerFor(previous);
      }
      const checkedAt = Date.now();
      const { request } = await checkGenerateRequest(app, project.id, given);
      let job: Job | null;
      try {
        job = await createGenerateJob(app.db, project.id, request, idempotencyKey ?? null, app.config.QUOTA_CONCURRENT_JOBS);
        if (!job) {
          // At the limit: the quota's own check says so with its figures (or, if jobs ended meanwhile, lets this one in).
          await checkConcurrentJobs(app, project.id);
          job = (await createGenerateJob(app.db, project.id, request, idempotencyKey ?? null))!;
        }
      } catch (error) {
        // Two requests raced with the same key: the first one's job is the answer to both.
        if (idempotencyKey && constraintViolation(error) === "unique") {
          return answerFor(await app.db.job.findUniqueOrThrow({ where: { projectId_idempotencyKey: { projectId: project.id, idempotencyKey } } }));
        }
        throw error;
      }
      try {
        // The router retries and falls back inside one attempt; a dead worker's job is still picked up again as stalled.
        // The request rides with the job (its worker need not read the row for it), and when its budget was checked.
        await app.queues.enqueue("generate", { jobId: job.id, projectId: project.id, request, checkedAt }, { jobId: job.id, attempts: 1 });
      } catch (error) {
        await app.db.job.delete({ where: { id: job.id } }).catch(() => {});
        app.logger.error({ err: error }, "could not enqueue the generate job");
        throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the job queue is unavailable; nothing was stored, retry later");
      }
      return job;
    },
  }),
);

/** Whether a retry asks for what the stored job asked for: both read through the request schema, so defaults compare equal. */
function sameGenerateRequest(stored: unknown, given: Record<string, unknown>): boolean {
  const retried = GenerateRequestSchema.safeParse(given);
  const first = GenerateRequestSchema.safeParse(stored);
  return retried.success && first.success && isDeepStrictEqual(JSON.parse(JSON.stringify(retried.data)), JSON.parse(JSON.stringify(first.data)));
}

/** Other input under a used key: nothing is started, the first job is named. */
function idempotencyConflict(key: string, jobId: string) {
  return new TesseraError(
    ErrorCode.IDEMPOTENCY_CONFLICT,
    `idempotency key "${key}" was already used for another request (job ${jobId}); nothing was started: use a new key for a new request`,
    { jobId },
  );
}
