import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_WEAVIATE_GRPC_PORT } from "../support/test-env.ts";
import { TcpOutageProxy } from "../support/tcp-outage-proxy.ts";

/*
 * A Weaviate outage mid-ingest, on the real Weaviate: the test's vector store
 * reaches it through a TCP proxy (HTTP and gRPC) that the test stops and
 * starts again, so the shared server and the other tests are not disturbed.
 */

const INGEST = /* GraphQL */ `
  mutation Ingest($input: IngestInput!) { ingest(input: $input) { asset { id status } job { id } } }
`;
const WEAVIATE_HTTP_PORT = Number(new URL(process.env.TEST_WEAVIATE_URL ?? "http://127.0.0.1:8080").port || 8080);
const OUTAGE_MS = 13_000;

async function startProxies() {
  return { http: await TcpOutageProxy.start(WEAVIATE_HTTP_PORT), grpc: await TcpOutageProxy.start(TEST_WEAVIATE_GRPC_PORT) };
}

type Proxies = Awaited<ReturnType<typeof startProxies>>;
const proxyEnv = (proxies: Proxies) => ({ WEAVIATE_URL: `http://127.0.0.1:${proxies.http.port}`, WEAVIATE_GRPC_PORT: String(proxies.grpc.port) });
const outage = (proxies: Proxies) => Promise.all([proxies.http.stop(), proxies.grpc.stop()]);
const recovery = (proxies: Proxies) => Promise.all([proxies.http.resume(), proxies.grpc.resume()]);

async function ingestText(t: TestApp, key: string, text: string) {
  const result = await t.graphql(INGEST, { input: { text } }, key);
  expect(result.errors).toBeUndefined();
  return result.data.ingest as { asset: { id: string }; job: { id: string } };
}

async function finishedAsset(t: TestApp, id: string, timeoutMs: number) {
  return eventually(async () => {
    const asset = await t.app.db.asset.findUnique({ where: { id } });
    return asset && ["READY", "FAILED"].includes(asset.status) ? asset : null;
  }, timeoutMs);
}

describe("a vector-store outage mid-ingest (Weaviate behind a proxy)", () => {
  let proxies: Proxies;
  let t: TestApp;
  let project: { key: string; projectId: string };

  beforeAll(async () => {
    proxies = await startProxies();
    t = await startTestApp({ worker: true, env: proxyEnv(proxies) });
    project = await t.createProject();
    // The models loaded before the outage, so the ingest reaches its index stage while Weaviate is away.
    await t.app.models.embedText(["warm-up"]);
  });

  afterAll(async () => {
    await recovery(proxies);
    await t.app.vectorStore.deleteProject(project.projectId).catch(() => {});
    await t.close();
    await outage(proxies);
  });

  async function ingestThroughOutage(text: string) {
    expect(OUTAGE_MS).toBeGreaterThan(t.app.config.WORKER_LOCK_MS);
    await outage(proxies);
    const started = Date.now();
    const { asset, job } = await ingestText(t, project.key, `${text} ${randomUUID()}`);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (Date.now() - started)));
    expect((await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).status).toBe("PROCESSING");
    await recovery(proxies);

    const finished = await finishedAsset(t, asset.id, 60_000);
    expect(finished.error).toBeNull();
    expect(finished.status).toBe("READY");
    const jobRow = await t.app.db.job.findUniqueOrThrow({ where: { id: job.id } });
    // One attempt although the outage outlasted the job's lock (WORKER_LOCK_MS): BullMQ renewed it while the stage waited.
    expect(jobRow).toMatchObject({ status: "SUCCEEDED", attempts: 1 });
    expect(await t.app.vectorStore.count(project.projectId, { assetId: asset.id })).toBeGreaterThan(0);
  }

  // A worker that starts while Weaviate is away has not read the collection's spaces yet (an HTTP call).
  it(`the first ingest of a worker, while Weaviate is unreachable for ${OUTAGE_MS / 1000} s, ends READY in its first job attempt`, async () => {
    await ingestThroughOutage("The ferry waited out the fog at the harbour mouth.");
  }, 120_000);

  // A worker that knows the collection writes over gRPC only.
  it(`a later ingest, while Weaviate is unreachable for ${OUTAGE_MS / 1000} s, ends READY in its first job attempt`, async () => {
    await ingestThroughOutage("Gulls followed the trawler back along the breakwater.");
  }, 120_000);
});
