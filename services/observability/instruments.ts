import { modelBatchDuration, modelBatchSize, vectorStoreDuration } from "./metrics.ts";
import { inSpan, tracer, tracingEnabled } from "./tracing.ts";

export type ModelBatchLabels = { model: string; operation: string; device: string };

/**
 * One model batch: its size and inference time into
 * tessera_model_batch_size / tessera_model_batch_duration_seconds, and a span
 * `model.batch <model>` with the batch size and device (never the inputs).
 */
export function observeModelBatch<T>(labels: ModelBatchLabels, size: number, run: () => Promise<T>): Promise<T> {
  modelBatchSize.observe(labels, size);
  const attributes = {
    "tessera.model.name": labels.model,
    "tessera.model.operation": labels.operation,
    "tessera.model.device": labels.device,
    "tessera.model.batch_size": size,
  };
  return inSpan(`model.batch ${labels.model}`, attributes, async () => {
    const started = performance.now();
    try {
      return await run();
    } finally {
      modelBatchDuration.observe(labels, (performance.now() - started) / 1000);
    }
  });
}

/** The VectorStore calls that are timed (services/search/vector-store.ts); health and close are not. */
const TIMED = new Set(["ensureSchema", "upsert", "deleteAsset", "deleteProject", "nearVector", "hybrid", "vectorsOf", "count"]);

/**
 * The vector store with each call timed into
 * tessera_vector_store_duration_seconds{store,operation,status} and traced as
 * a span `vector_store.<operation>` (with the record count of writes). Every
 * other property passes through unchanged.
 */
export function instrumentVectorStore<S extends { kind: string }>(store: S): S {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function" || typeof property !== "string" || !TIMED.has(property)) return value;
      let wrapper = wrapped.get(property);
      if (!wrapper) {
        const operation = property;
        wrapper = function (this: unknown, ...args: unknown[]) {
          const records = Array.isArray(args[1]) ? { "tessera.vector.count": args[1].length } : {};
          const attributes = { "db.system.name": target.kind, "db.operation.name": operation, ...records };
          return inSpan(`vector_store.${operation}`, attributes, async () => {
            const started = performance.now();
            let status = "error";
            try {
              const result = await (value as (...a: unknown[]) => unknown).apply(target, args);
              status = "ok";
              return result;
            } finally {
              vectorStoreDuration.observe({ store: target.kind, operation, status }, (performance.now() - started) / 1000);
            }
          });
        };
        wrapped.set(property, wrapper);
      }
      return wrapper;
    },
  });
}

/**
 * The time a job waited in its queue, as a span `queue.wait <queue>` from its
 * creation to a worker taking it, inside the job's trace (tracing on only).
 */
export function recordQueueWait(queue: string, createdAt: number, takenAt: number | undefined) {
  if (!tracingEnabled() || !takenAt) return;
  tracer.startSpan(`queue.wait ${queue}`, { startTime: createdAt, attributes: { "messaging.destination.name": queue } }).end(Math.max(createdAt, takenAt));
}
