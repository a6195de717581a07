import { ErrorCode, TesseraError } from "../core/errors.ts";

/**
 * Why a provider call failed, in classes an alias's `fallbackOn` and the
 * router's retry rule can name. The class travels in the error's details.
 */
export const ProviderErrorClass = {
  rateLimit: "rate_limit",
  timeout: "timeout",
  server: "server",
  connection: "connection",
  auth: "auth",
  badRequest: "bad_request",
  notFound: "not_found",
  unsupported: "unsupported",
  contentFilter: "content_filter",
} as const;

export type ProviderErrorClass = (typeof ProviderErrorClass)[keyof typeof ProviderErrorClass];
export const providerErrorClasses = Object.values(ProviderErrorClass) as [ProviderErrorClass, ...ProviderErrorClass[]];

/** Classes worth another try at the same model. */
export const retryableClasses = new Set<ProviderErrorClass>(["rate_limit", "timeout", "server", "connection"]);

const codeOfClass: Record<ProviderErrorClass, TesseraError["code"]> = {
  rate_limit: ErrorCode.PROVIDER_ERROR,
  timeout: ErrorCode.TIMEOUT,
  server: ErrorCode.PROVIDER_ERROR,
  connection: ErrorCode.PROVIDER_ERROR,
  auth: ErrorCode.PROVIDER_ERROR,
  bad_request: ErrorCode.PROVIDER_ERROR,
  not_found: ErrorCode.MODEL_NOT_FOUND,
  unsupported: ErrorCode.MODEL_ERROR,
  content_filter: ErrorCode.PROVIDER_ERROR,
};

export type ProviderErrorDetails = {
  errorClass: ProviderErrorClass;
  provider: string;
  status?: number;
  /** How long the provider asked us to wait before the next try. */
  retryAfterMs?: number;
};

export function providerError(errorClass: ProviderErrorClass, message: string, details: Omit<ProviderErrorDetails, "errorClass">) {
  return new TesseraError(codeOfClass[errorClass], message, { errorClass, ...details });
}

/** The class of a thrown error; errors that are not provider errors have none. */
export function errorClassOf(error: unknown): ProviderErrorClass | undefined {
  if (!(error instanceof TesseraError)) return undefined;
  const errorClass = error.details?.errorClass;
  return typeof errorClass === "string" ? (errorClass as ProviderErrorClass) : undefined;
}

export function retryAfterOf(error: unknown): number | undefined {
  if (!(error instanceof TesseraError)) return undefined;
  const value = error.details?.retryAfterMs;
  return typeof value === "number" ? value : undefined;
}
