import { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { defineStepType } from "./step-type.ts";

const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** The ingestion service's SSRF-guarded fetch: the same guard as URL ingestion. */
type SafeFetch = (url: string, init?: RequestInit & { maxBytes?: number }) => Promise<Response>;

async function loadSafeFetch(): Promise<SafeFetch> {
  // A variable specifier: the module belongs to the ingestion service and is loaded only when an http step runs.
  const specifier = "../../services/assets/safe-fetch.ts";
  const module = (await import(specifier)) as { safeFetch?: SafeFetch };
  if (!module.safeFetch) throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "the guarded fetcher is not available");
  return module.safeFetch;
}

/** Calls an HTTP API. Private, loopback and link-local addresses are refused, as for URL ingestion. */
export const httpStep = defineStepType({
  uses: "http",
  description: "Call an HTTP(S) URL; private network addresses are refused. JSON responses are parsed.",
  with: z
    .object({
      url: z.url({ protocol: /^https?$/ }),
      method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]).default("GET"),
      headers: z.record(z.string(), z.string()).default({}),
      /** Sent as JSON with content-type application/json. */
      json: z.unknown().optional(),
      body: z.string().optional(),
      /** Fail the step on a status of 400 or more. */
      failOnError: z.boolean().default(true),
    })
    .strict(),
  output: z
    .object({
      status: z.number().int(),
      headers: z.record(z.string(), z.string()),
      body: z.unknown(),
    })
    .strict(),
  async run(input, context) {
    const safeFetch = await loadSafeFetch();
    const headers = { ...input.headers };
    let body = input.body;
    if (input.json !== undefined) {
      body = JSON.stringify(input.json);
      headers["content-type"] ??= "application/json";
    }
    const response = await safeFetch(input.url, {
      method: input.method,
      headers,
      body,
      signal: context.signal,
      maxBytes: MAX_BODY_BYTES,
    });
    const text = await response.text();
    if (text.length > MAX_BODY_BYTES) throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `response body over ${MAX_BODY_BYTES} bytes`);
    const isJson = (response.headers.get("content-type") ?? "").includes("json");
    let parsed: unknown = text;
    if (isJson && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (input.failOnError && response.status >= 400) {
      // 4xx will not get better by retrying; 5xx might.
      const code = response.status >= 500 ? ErrorCode.FETCH_FAILED : ErrorCode.BAD_USER_INPUT;
      throw new TesseraError(code, `${input.method} ${input.url} answered ${response.status}`, { status: response.status });
    }
    return { status: response.status, headers: Object.fromEntries(response.headers), body: parsed };
  },
});
