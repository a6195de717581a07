import type { Plugin } from "graphql-yoga";
import type { AppContext } from "../app/app-context.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { webhookSettings } from "../webhooks/webhook-settings.ts";
import { startWebhookRun } from "../../workflows/triggers/trigger-runs.ts";

/** Where a webhook trigger listens: `POST /hooks/triggers/<trigger id>`. */
export const WEBHOOK_TRIGGER_PATH = /^\/hooks\/triggers\/([0-9a-f-]{36})\/?$/i;

export function webhookTriggerUrl(origin: string, triggerId: string): string {
  return `${origin.replace(/\/$/, "")}/hooks/triggers/${triggerId}`;
}

const STATUS_BY_CODE: Partial<Record<string, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.BAD_USER_INPUT]: 400,
  [ErrorCode.CONFLICT]: 409,
  [ErrorCode.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCode.EXPRESSION_LIMIT]: 400,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.QUOTA_EXCEEDED]: 429,
  [ErrorCode.SERVICE_UNAVAILABLE]: 503,
};

/** The raw bytes (the signature covers them exactly), stopped past `limit`. */
async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  if (Number(request.headers.get("content-length")) > limit) throw tooLarge(limit);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body?.getReader();
  if (!reader) return new Uint8Array();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function tooLarge(limit: number) {
  return new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `a webhook body may be at most ${limit} bytes (WEBHOOK_TRIGGER_MAX_BYTES)`, { limit });
}

/**
 * Incoming webhook triggers, beside /graphql: no API key, the trigger's signed
 * secret instead (workflows/triggers/trigger-runs.ts). 202 with the run's id;
 * 200 with the same id for a delivery id seen before; 401 for a bad or stale
 * signature, with nothing stored.
 */
export function useWebhookTriggerRoute(app: AppContext): Plugin {
  return {
    async onRequest({ url, request, endResponse, fetchAPI }) {
      const match = WEBHOOK_TRIGGER_PATH.exec(url.pathname);
      if (!match) return;
      const answer = (status: number, body: unknown) =>
        endResponse(new fetchAPI.Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8" } }));
      if (request.method !== "POST") return answer(405, { error: { code: ErrorCode.BAD_USER_INPUT, message: "POST only" } });
      try {
        const rawBody = await readBody(request, webhookSettings().WEBHOOK_TRIGGER_MAX_BYTES);
        const { runId, duplicate } = await startWebhookRun(app, match[1]!.toLowerCase(), { rawBody, headers: request.headers });
        answer(duplicate ? 200 : 202, { runId, duplicate });
      } catch (error) {
        const status = error instanceof TesseraError ? STATUS_BY_CODE[error.code] : undefined;
        if (!status || !(error instanceof TesseraError)) {
          app.logger.error({ err: error, path: url.pathname }, "a webhook trigger failed");
          return answer(500, { error: { code: ErrorCode.INTERNAL, message: "an internal error stopped this; the server's logs have the details" } });
        }
        answer(status, { error: { code: error.code, message: error.message } });
      }
    },
  };
}
