import { Readable } from "node:stream";
import { Busboy } from "@fastify/busboy";
import type { GraphQLParams, Plugin } from "graphql-yoga";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { StreamedUpload } from "./streamed-upload.ts";

export type StreamedUploadLimits = { maxFileBytes: number; maxFiles: number; maxFieldBytes: number; maxRequestBytes: number };

/**
 * GraphQL multipart requests (the spec's `operations`, `map`, then files),
 * parsed as a stream. Yoga's own parser (@whatwg-node's `request.formData()`)
 * collects every file in memory before the resolver runs, even with a
 * `fileSize` limit; this one hands resolvers each file while it is still
 * arriving (see StreamedUpload), so the blob store writes it to disk as it
 * comes and stops it at the size limit.
 */
export function useStreamedUploads(limits: StreamedUploadLimits): Plugin {
  const uploadsOf = new WeakMap<Request, StreamedUpload[]>();
  return {
    onRequestParse({ request, setRequestParser }) {
      if (request.method !== "POST" || !request.headers.get("content-type")?.toLowerCase().startsWith("multipart/form-data")) return;
      // Refused before a byte is read when the client says how much is coming; otherwise the limits below stop it mid-stream.
      if (Number(request.headers.get("content-length")) > limits.maxRequestBytes) {
        throw new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `the request is larger than the upload limit of ${limits.maxFileBytes} bytes`);
      }
      const uploads: StreamedUpload[] = [];
      uploadsOf.set(request, uploads);
      setRequestParser((limited) => parseMultipart(limited, limits, uploads));
    },
    onResponse({ request }) {
      for (const upload of uploadsOf.get(request) ?? []) upload.discard();
    },
  };
}

function parseMultipart(request: Request, limits: StreamedUploadLimits, uploads: StreamedUpload[]): Promise<GraphQLParams | GraphQLParams[]> {
  return new Promise((resolve, reject) => {
    let operations: unknown;
    const byField = new Map<string, StreamedUpload>();
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      if (error) return reject(error);
      if (operations === undefined) return reject(badRequest('missing multipart field "operations"'));
      resolve(operations as GraphQLParams);
    };
    const parser = new Busboy({
      headers: { "content-type": request.headers.get("content-type") ?? "" },
      // +1 byte: the blob store sees the limit crossed and answers PAYLOAD_TOO_LARGE itself.
      limits: { fileSize: limits.maxFileBytes + 1, files: limits.maxFiles, fields: 10, fieldSize: limits.maxFieldBytes },
    });
    parser.on("field", (name, value, _nameTruncated, valueTruncated) => {
      if (valueTruncated) return fail(badRequest(`multipart field "${name}" is larger than ${limits.maxFieldBytes} bytes`));
      try {
        if (name === "operations") operations = JSON.parse(value);
        else if (name === "map") mapFiles(JSON.parse(value));
      } catch (error) {
        fail(error instanceof TesseraError ? error : badRequest(`multipart field "${name}" is not valid JSON`));
      }
    });
    parser.on("file", (name, part, filename, _encoding, mimeType) => {
      const upload = byField.get(name);
      if (!upload) return part.resume(); // not in the map: nobody asked for it
      upload.attach(part, filename, mimeType);
      // The spec sends files last, so everything the operation needs is known now.
      settle();
    });
    parser.on("filesLimit", () => fail(new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `more than ${limits.maxFiles} files in one request`)));
    parser.on("fieldsLimit", () => fail(badRequest("too many multipart fields")));
    parser.on("error", (error: Error) => fail(badRequest(`invalid multipart request: ${error.message}`)));
    parser.on("finish", () => {
      for (const upload of byField.values()) {
        if (!upload.arrived) upload.fail(badRequest(`the file "${upload.field}" was never sent`));
      }
      settle();
    });

    function mapFiles(map: unknown) {
      if (operations === undefined) throw badRequest('"map" must come after "operations"');
      if (typeof map !== "object" || map === null) throw badRequest('"map" must be an object');
      for (const [field, paths] of Object.entries(map)) {
        if (!Array.isArray(paths)) throw badRequest(`"map" entry "${field}" must be a list of paths`);
        const upload = new StreamedUpload(field);
        byField.set(field, upload);
        uploads.push(upload);
        for (const path of paths) setPath(operations, String(path), upload);
      }
    }

    function fail(error: Error) {
      for (const upload of uploads) upload.fail(error);
      settle(error);
    }

    if (!request.body) return settle(badRequest("the multipart request has no body"));
    // Yoga hands over @whatwg-node's ponyfill stream, which Readable.fromWeb refuses. It is a Node stream inside
    // (`readable`), piped as it is; any other web stream is read through its reader.
    const inner = (request.body as { readable?: unknown }).readable;
    const body = inner instanceof Readable ? inner : Readable.from(readChunks(request.body));
    // A body that breaks off, or yoga's request size limit, ends every unread file with that error.
    body.on("error", (error) => fail(isTooLarge(error) ? new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, "the request is larger than the upload limit") : error));
    body.pipe(parser);
  });
}

async function* readChunks(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

function setPath(target: unknown, path: string, value: unknown) {
  const keys = path.split(".");
  let current = target as Record<string, unknown>;
  for (const [index, key] of keys.entries()) {
    if (key === "__proto__" || key === "constructor" || key === "prototype") throw badRequest(`invalid path "${path}" in "map"`);
    if (index === keys.length - 1) {
      current[key] = value;
      return;
    }
    const next = current[key];
    if (typeof next !== "object" || next === null) throw badRequest(`path "${path}" in "map" names nothing in "operations"`);
    current = next as Record<string, unknown>;
  }
}

function isTooLarge(error: unknown) {
  return (error as { extensions?: { code?: string } })?.extensions?.code === "REQUEST_ENTITY_TOO_LARGE";
}

function badRequest(message: string) {
  return new TesseraError(ErrorCode.BAD_USER_INPUT, message);
}
