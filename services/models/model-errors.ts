import { ErrorCode, TesseraError } from "../core/errors.ts";

/** A declared weight file or export folder is not there. */
export function modelNotFound(model: string, message: string, details: Record<string, unknown> = {}) {
  return new TesseraError(ErrorCode.MODEL_NOT_FOUND, `model ${model}: ${message}`, { model, ...details });
}

/**
 * Anything a model throws (bad graph, shape mismatch, out of memory) becomes
 * a MODEL_ERROR naming the model, so the job fails cleanly and the worker lives on.
 */
export function toModelError(model: string, error: unknown): TesseraError {
  if (error instanceof TesseraError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const outOfMemory = /out of memory|bad_alloc|Failed to allocate|CUDA_ERROR_OUT_OF_MEMORY/i.test(message);
  return new TesseraError(
    ErrorCode.MODEL_ERROR,
    `model ${model}: ${outOfMemory ? "out of memory: " : ""}${firstLine(message)}`,
    { model, ...(outOfMemory ? { reason: "OUT_OF_MEMORY" } : {}) },
  );
}

function firstLine(message: string) {
  return message.split("\n")[0]!.slice(0, 500);
}
