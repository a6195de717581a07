import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { redactSecrets } from "../core/secret-redaction.ts";
import { metricsRegistry } from "./metrics.ts";
import { checkReadiness, type ReadinessDependencies } from "./readiness.ts";

export type ProbeOptions = {
  deps: ReadinessDependencies;
  /** When set, `/metrics` answers only `Authorization: Bearer <token>`. */
  metricsToken?: string;
};

export type ProbeResponse = { status: number; headers: Record<string, string>; body: string };

const json = (status: number, value: unknown): ProbeResponse => ({
  status,
  headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  body: JSON.stringify(value),
});

function sameSecret(given: string, expected: string) {
  // Hashes have one length, so the comparison takes the same time whatever was sent.
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The paths answerProbe answers. */
export const PROBE_PATHS: ReadonlySet<string> = new Set(["/live", "/ready", "/metrics"]);

/** The probe routes, `/live`, `/ready` and `/metrics`: their answer, or null for any other path. */
export async function answerProbe(method: string, pathname: string, authorization: string | null, options: ProbeOptions): Promise<ProbeResponse | null> {
  if (method !== "GET" && method !== "HEAD") return null;
  switch (pathname) {
    case "/live":
      // The process is up and its event loop turns: nothing else is asked, so a dependency's outage never restarts it.
      return json(200, { status: "live" });
    case "/ready": {
      const readiness = await checkReadiness(options.deps);
      const checks = readiness.checks.map((check) => ({
        ...check,
        ...(check.error ? { error: redactSecrets(check.error) } : {}),
        ...(check.models ? { models: check.models.map((model) => (model.error ? { ...model, error: redactSecrets(model.error) } : model)) } : {}),
      }));
      return json(readiness.ready ? 200 : 503, { status: readiness.ready ? "ready" : "not ready", checks });
    }
    case "/metrics": {
      if (options.metricsToken) {
        const token = authorization?.match(/^Bearer\s+(.+)$/i)?.[1] ?? "";
        if (!sameSecret(token, options.metricsToken)) {
          return { status: 401, headers: { "content-type": "text/plain", "www-authenticate": "Bearer" }, body: "metrics need the METRICS_TOKEN\n" };
        }
      }
      return { status: 200, headers: { "content-type": metricsRegistry.contentType }, body: await metricsRegistry.metrics() };
    }
    default:
      return null;
  }
}

/**
 * A small HTTP server with only the probe routes, for processes without the
 * gateway (workers: WORKER_HTTP_PORT). Anything else answers 404.
 */
export async function startProbeServer(port: number, host: string, options: ProbeOptions): Promise<{ server: Server; address: AddressInfo; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    const pathname = new URL(request.url ?? "/", "http://localhost").pathname;
    answerProbe(request.method ?? "GET", pathname, request.headers.authorization ?? null, options).then(
      (answer) => {
        const { status, headers, body } = answer ?? { status: 404, headers: { "content-type": "text/plain" }, body: "not found\n" };
        response.writeHead(status, headers);
        response.end(request.method === "HEAD" ? undefined : body);
      },
      (error: unknown) => {
        response.writeHead(500, { "content-type": "text/plain" });
        response.end(`probe failed: ${redactSecrets(error instanceof Error ? error.message : String(error))}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? new Error(`port ${port} on ${host} is already in use: set WORKER_HTTP_PORT to a free one`) : error),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    address: server.address() as AddressInfo,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
