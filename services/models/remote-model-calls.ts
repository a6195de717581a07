import { Queue, QueueEvents, UnrecoverableError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import { ErrorCode, TesseraError, toErrorRecord } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";

/**
 * What a model can be asked to do, locally or on another worker. `imageInput` asks which size the
 * model's image tower takes, so a caller can resize before sending (a decoded photo is up to 3 MB of
 * RGB; at CLIP's 224 px it is 150 KB).
 */
export const MODEL_OPERATIONS = ["embedText", "embedImages", "embedAudio", "readText", "detectSpeech", "transcribe", "project", "imageInput"] as const;
export type ModelOperation = (typeof MODEL_OPERATIONS)[number];

/** One call of one model on one input: the payload of a model's queue. */
const ModelCallPayload = z.object({ operation: z.enum(MODEL_OPERATIONS), input: z.unknown() });

/** The queue of one model's calls: only workers that serve the model take from it. */
export function modelQueueName(model: string) {
  return `model-${model}`;
}

/*
 * Inputs and outputs hold typed arrays (RGB pixels, PCM samples, vectors);
 * JSON carries them as base64 under a one-key marker object.
 */
export function toWire(value: unknown): unknown {
  if (value instanceof Float32Array) return { $f32: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (value instanceof Uint8Array) return { $u8: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (Array.isArray(value)) return value.map(toWire);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toWire(inner)]));
  return value;
}

export function fromWire(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromWire);
  if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (typeof record.$f32 === "string") {
      const bytes = Buffer.from(record.$f32, "base64");
      // A copy: the decoded Buffer may sit in a shared pool at an offset that is not a multiple of 4.
      return new Float32Array(new Uint8Array(bytes).buffer);
    }
    if (typeof record.$u8 === "string") return Buffer.from(record.$u8, "base64");
    return Object.fromEntries(Object.entries(record).map(([key, inner]) => [key, fromWire(inner)]));
  }
  return value;
}

/**
 * Calls models that other workers serve, over BullMQ: one queue per model,
 * the result comes back as the job's return value. Used by a worker started
 * with `--remote-models` for the models it does not run itself (a CPU worker
 * sending CLIP to a GPU worker), so one ingest job still gets every encoder.
 */
export class RemoteModelClient {
  private readonly queues = new Map<string, { queue: Queue; events: QueueEvents; eventsConnection: Redis; ready: Promise<unknown> }>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** How long a call waits for a worker that serves the model. */
    private readonly timeoutMs: number,
  ) {}

  async call<O>(model: string, operation: ModelOperation, input: unknown): Promise<O> {
    const { queue, events, ready } = this.queueOf(model);
    await ready;
    const job = await queue.add(operation, { operation, input: toWire(input) }, { removeOnComplete: true, removeOnFail: true });
    try {
      return fromWire(await job.waitUntilFinished(events, this.timeoutMs)) as O;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/timed out/i.test(message)) {
        await job.remove().catch(() => {}); // still waiting: nobody will take it; running: it finishes unheard
        throw new TesseraError(
          ErrorCode.MODEL_ERROR,
          `no worker answered a call of model ${model} within ${this.timeoutMs} ms: start a worker that serves it (--models ${model})`,
          { model },
        );
      }
      throw remoteError(model, message);
    }
  }

  private queueOf(model: string) {
    let entry = this.queues.get(model);
    if (!entry) {
      const name = modelQueueName(model);
      const eventsConnection = this.redis.duplicate();
      const events = new QueueEvents(name, { connection: eventsConnection, prefix: this.prefix });
      const queue = new Queue(name, { connection: this.redis, prefix: this.prefix });
      // Every call in flight listens for the queue closing (BullMQ's waitUntilFinished): a worker with more than
      // ten jobs at once is normal, not a leak, so Node's warning about eleven listeners is turned off.
      queue.setMaxListeners(0);
      entry = { queue, events, eventsConnection, ready: events.waitUntilReady() };
      this.queues.set(model, entry);
    }
    return entry;
  }

  async close() {
    const entries = [...this.queues.values()];
    this.queues.clear();
    await Promise.all(entries.flatMap(({ queue, events }) => [queue.close(), events.close()]));
    // QueueEvents leaves a connection it was given open: without this, the process could not exit.
    for (const { eventsConnection } of entries) eventsConnection.disconnect();
  }
}

/** The serving side's error, sent as the failed job's reason: code, message and details survive the trip. */
function remoteError(model: string, reason: string): TesseraError {
  try {
    const record = JSON.parse(reason) as { code: ErrorCode; message: string; details?: Record<string, unknown> };
    if (record.code && record.message) return new TesseraError(record.code, record.message, record.details);
  } catch {
    // not one of ours: a plain failure reason
  }
  return new TesseraError(ErrorCode.MODEL_ERROR, `model ${model} failed on a remote worker: ${reason}`, { model });
}

/** What serves remote calls: this process's runtime, for the models it runs itself. */
export type LocalModelCaller = {
  /** The models this process runs itself, each with how many of its calls may wait in its batcher at once. */
  localModels(): Array<{ name: string; maxBatchSize: number }>;
  callModel(model: string, operation: ModelOperation, input: unknown): Promise<unknown>;
};

/** Takes the calls of every model this process serves from their queues. */
export function serveModelCalls(
  runtime: LocalModelCaller,
  options: { redis: Redis; prefix: string; logger: Logger },
): Worker[] {
  return runtime.localModels().map(({ name: model, maxBatchSize }) => {
    const worker = new Worker(
      modelQueueName(model),
      async (job: Job) => {
        const parsed = ModelCallPayload.safeParse(job.data);
        if (!parsed.success) throw new UnrecoverableError(JSON.stringify({ code: ErrorCode.BAD_USER_INPUT, message: `not a model call: ${parsed.error.message}` }));
        try {
          return toWire(await runtime.callModel(model, parsed.data.operation, fromWire(parsed.data.input)));
        } catch (error) {
          // The caller's job decides about retries; this call is answered once, with the typed error (the raw one is logged here).
          if (!(error instanceof TesseraError)) options.logger.warn({ err: error, model, callId: job.id }, "model call failed with an internal error");
          throw new UnrecoverableError(JSON.stringify(toErrorRecord(error, `model call ${job.id} of ${model}`)));
        }
      },
      // Concurrent calls reach the model's dynamic batcher together, so remote calls are batched as local ones are.
      { connection: options.redis, prefix: options.prefix, concurrency: Math.max(1, maxBatchSize) },
    );
    worker.on("error", (error) => options.logger.error({ err: error, model }, "model call worker error"));
    return worker;
  });
}
