import http from "node:http";

type EarlyAnswer = { status: number; body: string; connection?: string };

/**
 * Starts a POST to `url` (the gateway's /graphql), writes `firstBytes` then `moreChunks` chunks of `chunkBytes`
 * spaces, and waits, without ending the request, for the gateway's answer: a gateway that read on would never answer.
 */
export function answerBeforeBodyEnds(
  url: string,
  headers: Record<string, string>,
  firstBytes: Buffer | string,
  options: { moreChunks?: number; chunkBytes?: number; timeoutMs?: number } = {},
): Promise<EarlyAnswer> {
  const { moreChunks = 0, chunkBytes = 16 * 1024, timeoutMs = 10_000 } = options;
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: hostname, port, path: pathname, method: "POST", headers });
    const timer = setTimeout(() => {
      request.destroy();
      reject(new Error("no answer before the body ended: the gateway was still reading it"));
    }, timeoutMs);
    request.on("response", (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => {
        clearTimeout(timer);
        request.destroy();
        resolve({ status: response.statusCode!, body, connection: response.headers.connection });
      });
    });
    request.on("error", () => {}); // the gateway may close the socket while we still write
    request.write(firstBytes);
    for (let i = 0; i < moreChunks; i++) request.write(Buffer.alloc(chunkBytes, 0x20));
  });
}
