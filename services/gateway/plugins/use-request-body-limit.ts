import { GraphQLError } from "graphql";
import type { Plugin } from "graphql-yoga";
import { limitBody } from "./limit-body.ts";

/** What yoga's own limit answers, so clients see the same 413 and 400 as before. */
function bodyTooLarge() {
  return new GraphQLError("Request body too large", { extensions: { http: { status: 413 }, code: "REQUEST_ENTITY_TOO_LARGE" } });
}

function invalidContentLength() {
  return new GraphQLError("Content-Length header is invalid.", { extensions: { http: { status: 400 }, code: "BAD_REQUEST" } });
}

/** One non-negative integer: anything else (a list, a sign, a letter) is refused, as yoga refuses it. */
const CONTENT_LENGTH = /^\d+$/;

/**
 * The largest body any request may send (yoga's `maxRequestBodySize`, which
 * the gateway turns off for this). Yoga's limit passes every body through a
 * WHATWG TransformStream and a new Request, half a millisecond of CPU a
 * request (bench/README.md, search, issue #20 fourth round). Here a body that
 * announces its length is checked by that length alone: over the limit, 413
 * before a byte is read; within it, Node's HTTP parser delivers exactly that
 * many bytes and no more (it refuses a request that carries both
 * Content-Length and Transfer-Encoding, or two different lengths), so there is
 * nothing left to count. Only a body without a length (chunked) is counted as
 * it is read, and cut off past the limit, as before. Registered after every
 * request parser (useStreamedUploads, useKeyBeforeBody), as yoga's was.
 */
export function useRequestBodyLimit(limit: number): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const contentLength = request.headers.get("content-length");
      if (contentLength !== null) {
        if (!CONTENT_LENGTH.test(contentLength)) throw invalidContentLength();
        if (Number(contentLength) > limit) throw bodyTooLarge();
        // A compressed body may grow when something decodes it: that one is counted as it is read.
        if (!request.headers.has("transfer-encoding") && !request.headers.has("content-encoding")) return;
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((parsed) => parse(limitBody(parsed, limit, fetchAPI, bodyTooLarge)));
    },
  };
}
