/**
 * The request with a body that errors (and stops being read) with `tooLarge()` once more than `limit` bytes have
 * been read, as yoga's own limit does it: the native TransformStream for a native body, the ponyfill's otherwise.
 */
export function limitBody(
  request: Request,
  limit: number,
  fetchAPI: { Request: typeof Request; TransformStream: typeof TransformStream },
  tooLarge: () => Error,
): Request {
  if (!request.body) return request;
  const Transform = request.body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
  let read = 0;
  const body = request.body.pipeThrough(
    new Transform<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.byteLength;
        if (read > limit) return controller.error(tooLarge());
        controller.enqueue(chunk);
      },
    }),
  );
  return new fetchAPI.Request(request.url, { method: request.method, headers: request.headers, signal: request.signal, body, duplex: "half" } as RequestInit);
}
