import { GraphQLError } from "graphql";
import type { Plugin } from "graphql-yoga";
import type { Caller } from "../../core/api-keys.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { missingApiKeyError } from "../context.ts";
import { toGraphQLError } from "../graphql-errors.ts";
import { limitBody } from "./limit-body.ts";

export type KeyBeforeBodyOptions = {
  /** The caller of a request, from its `Authorization` header (memoised per request by the gateway). */
  callerOf(request: Request): Promise<Caller | null>;
  /** The most a caller without a valid key may send (MAX_UNAUTHENTICATED_BODY_BYTES). */
  maxBodyBytes: number;
};

/** Thrown from the request parser: yoga answers with `http.status` and the client sees the code. */
function refusal(error: TesseraError, status: number): GraphQLError {
  const wire = toGraphQLError(error);
  return new GraphQLError(wire.message, { extensions: { ...wire.extensions, http: { status } } });
}

function tooLarge(limit: number) {
  return refusal(
    new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `a request without a valid API key may carry at most ${limit} bytes (MAX_UNAUTHENTICATED_BODY_BYTES)`, {
      limit,
      variable: "MAX_UNAUTHENTICATED_BODY_BYTES",
    }),
    413,
  );
}

/**
 * The key is checked before the body is read. A caller with a valid key gets
 * the upload limits (MAX_UPLOAD_BYTES); one without gets a small body: a
 * larger announced length is refused with 413 before a byte is read, a longer
 * chunked body is cut off at the limit, and a multipart upload (only for
 * callers with a key) is refused with 401 before its stream is touched.
 * Registered after the request parsers (useStreamedUploads), so it wraps
 * whichever one the request chose.
 */
export function useKeyBeforeBody(options: KeyBeforeBodyOptions): Plugin {
  const limit = options.maxBodyBytes;
  // Requests refused with their body unread: their connection closes after the answer, or Node would
  // read (and throw away) the rest of the body to keep the connection alive, however large it is.
  const unread = new WeakSet<Request>();
  return {
    async onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      if (request.method === "GET" || request.method === "HEAD" || !request.body) return;
      if (await options.callerOf(request)) return;
      const refuse = (error: GraphQLError) => {
        unread.add(request);
        return error;
      };
      if (request.headers.get("content-type")?.toLowerCase().startsWith("multipart/form-data")) throw refuse(refusal(missingApiKeyError(), 401));
      if (Number(request.headers.get("content-length")) > limit) throw refuse(tooLarge(limit));
      if (!requestParser) return;
      const parse = requestParser;
      setRequestParser((parsed) => parse(limitBody(parsed, limit, fetchAPI, () => refuse(tooLarge(limit)))));
    },
    onResponse({ request, response }) {
      if (unread.has(request)) response.headers.set("connection", "close");
    },
  };
}
