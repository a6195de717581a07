// The images' HEALTHCHECK (node, as the slim images have no curl): exit 0 when this container's process is
// ready, 1 when not. A worker is probed on WORKER_HTTP_PORT (its /live, /ready and /metrics server), anything
// else on PORT (the gateway). `/ready` checks PostgreSQL, Redis and the vector store; a build whose gateway does
// not serve `/ready` yet is asked the keyless GraphQL `health` query instead.
const port = process.env.WORKER_HTTP_PORT || process.env.PORT || "4000";
const base = `http://127.0.0.1:${port}`;
const timeout = () => AbortSignal.timeout(4000);

async function healthy() {
  const ready = await fetch(`${base}/ready`, { signal: timeout() });
  if (ready.status !== 404) return ready.ok;
  const health = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: "{ health { status } }" }),
    signal: timeout(),
  });
  const body = await health.json().catch(() => null);
  return health.ok && body?.data?.health?.status === "OK";
}

healthy().then(
  (ok) => {
    if (!ok) console.error(`not ready: ${base}`);
    process.exit(ok ? 0 : 1);
  },
  (error) => {
    console.error(`unreachable: ${base}: ${error?.cause?.message ?? error?.message ?? error}`);
    process.exit(1);
  },
);
