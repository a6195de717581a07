import { z } from "zod";
import { fetchPolicy, safeFetch } from "../../services/assets/safe-fetch.ts";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { defineStepType } from "./step-type.ts";

/** Responses are stored as step outputs, so they are kept small. */
const MAX_BODY_BYTES = 2 * 1024 * 1024;

/** Calls an HTTP API through the same SSRF guard as URL ingestion: private addresses are refused unless allow-listed. */
export const httpStep = defineStepType({
  uses: "http",
  description: "Call an HTTP(S) URL; private network addresses are refused (URL_ALLOW_HOSTS). JSON responses are parsed.",
  with: z
    .object({
      url: z.url({ protocol: /^https?$/ }),
      method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]).default("GET"),
      headers: z.record(z.string(), z.string()).default({}),
      json: z.unknown().optional().describe("Sent as the JSON body, with content-type application/json."),
      body: z.string().optional(),
      failOnError: z.boolean().default(true).describe("Fail the step on a status of 400 or more."),
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
    const headers = { ...input.headers };
    let body = input.body;
    if (input.json !== undefined) {
      body = JSON.stringify(input.json);
      headers["content-type"] ??= "application/json";
    }
    const policy = { ...fetchPolicy(context.app.config), maxBytes: MAX_BODY_BYTES };
    const response = await safeFetch(input.url, { method: input.method, headers, body, signal: context.signal }, policy);
    const text = await response.text();
    let parsed: unknown = text;
    if ((response.headers.get("content-type") ?? "").includes("json") && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (input.failOnError && response.status >= 400) {
      // A 4xx will not get better by retrying; a 5xx might.
      const code = response.status >= 500 ? ErrorCode.FETCH_FAILED : ErrorCode.BAD_USER_INPUT;
      throw new TesseraError(code, `${input.method} ${input.url} answered ${response.status}`, { status: response.status });
    }
    return { status: response.status, headers: Object.fromEntries(response.headers), body: parsed };
  },
});
