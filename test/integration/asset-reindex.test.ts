import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_WEAVIATE_GRPC_PORT } from "../support/test-env.ts";
import { TcpOutageProxy } from "../support/tcp-outage-proxy.ts";
import { isVectorStoreUnreachable } from "../../services/search/vector-store-outage.ts";

/*
 * An outage longer than the retry budget fails an ingest (SERVICE_UNAVAILABLE, after the job's
 * attempts); reindexAsset and `tessera assets reindex --failed` bring such assets to READY from
 * their stored bytes. Weaviate is reached through a TCP proxy the test stops, as in
 * vector-store-outage.test.ts, with a 1 s budget instead of minutes.
 */

const root = path.resolve(import.meta.dirname, "..", "..");
const INGEST = /* GraphQL */ `mutation($input: IngestInput!) { ingest(input: $input) { asset { id } job { id } } }`;
const REINDEX = /* GraphQL */ `mutation($id: ID!) { reindexAsset(id: $id) { asset { id status } job { id status } } }`;
const WEAVIATE_HTTP_PORT = Number(new URL(process.env.TEST_WEAVIATE_URL ?? "http://127.0.0.1:8080").port || 8080);

let t: TestApp;
let project: { key: string; projectId: string };
let http: TcpOutageProxy;
let grpc: TcpOutageProxy;

async function ingestText(text: string) {
  const result = await t.graphql(INGEST, { input: { text: `${text} ${randomUUID()}` } }, project.key);
  expect(result.errors).toBeUndefined();
  return result.data.ingest as { asset: { id: string }; job: { id: string } };
}

async function settled(id: string, timeoutMs = 60_000) {
  return eventually(async () => {
    const asset = await t.app.db.asset.findUnique({ where: { id } });
    return asset && ["READY", "FAILED"].includes(asset.status) ? asset : null;
  }, timeoutMs);
}

/** Ingests the texts while Weaviate is unreachable, until each asset is FAILED. */
async function failedDuringOutage(texts: string[]) {
  await Promise.all([http.stop(), grpc.stop()]);
  try {
    const ids = await Promise.all(texts.map(async (text) => (await ingestText(text)).asset.id));
    for (const id of ids) {
      const asset = await settled(id);
      expect(asset.status).toBe("FAILED");
      expect(asset.error).toMatchObject({ code: "SERVICE_UNAVAILABLE", details: { service: "vectorStore" } });
    }
    return ids;
  } finally {
    await Promise.all([http.resume(), grpc.resume()]);
    await storeAnswersAgain();
  }
}

/**
 * gRPC reconnects with its own backoff (seconds) after an outage: wait until the store takes a batch
 * write through the proxy again (the call an ingest makes), or a re-index right after would meet the
 * outage's tail with a 1 s retry budget. A read alone is not enough: it can succeed while a write
 * still fails fast with the channel's last ECONNREFUSED.
 */
async function storeAnswersAgain() {
  const { space, model, vectors } = (await t.app.models.embedText(["probe"]))[0]!;
  const probeId = randomUUID();
  const probe = { assetId: probeId, space, model, chunk: 0, vector: vectors[0]!, modality: "TEXT" as const, text: "probe", tags: [], metadata: {} };
  await eventually(async () => {
    try {
      await t.app.vectorStore.upsert(project.projectId, [probe]);
      return (await t.app.vectorStore.vectorsOf(project.projectId, probeId)).length > 0 ? true : null;
    } catch (error) {
      if (isVectorStoreUnreachable(error)) return null;
      throw error;
    }
  }, 60_000);
  await t.app.vectorStore.deleteAsset(project.projectId, probeId);
}

beforeAll(async () => {
  http = await TcpOutageProxy.start(WEAVIATE_HTTP_PORT);
  grpc = await TcpOutageProxy.start(TEST_WEAVIATE_GRPC_PORT);
  t = await startTestApp({
    worker: true,
    env: {
      WEAVIATE_URL: `http://127.0.0.1:${http.port}`,
      WEAVIATE_GRPC_PORT: String(grpc.port),
      VECTOR_STORE_RETRY_MS: "1000",
      VECTOR_STORE_RETRY_MAX_WAIT_MS: "300",
    },
  });
  project = await t.createProject();
  await t.app.models.embedText(["warm-up"]);
}, 120_000);

afterAll(async () => {
  await http?.resume();
  await grpc?.resume();
  await t?.app.vectorStore.deleteProject(project.projectId).catch(() => {});
  await t?.close();
  await http?.stop();
  await grpc?.stop();
});

describe("reindexAsset", () => {
  it("an asset FAILED by an outage longer than VECTOR_STORE_RETRY_MS becomes READY through reindexAsset, with a new job", async () => {
    const [id] = (await failedDuringOutage(["The night train crossed the salt flats without stopping."])) as [string];
    const failedJob = await t.app.db.job.findFirstOrThrow({ where: { assetId: id } });
    expect(failedJob).toMatchObject({ status: "FAILED", attempts: 3 });

    const result = await t.graphql(REINDEX, { id }, project.key);
    expect(result.errors).toBeUndefined();
    expect(result.data.reindexAsset.asset).toEqual({ id, status: "PENDING" });
    expect(result.data.reindexAsset.job.id).not.toBe(failedJob.id);
    // The whole row, so a failure shows the asset's error.
    expect(await settled(id)).toMatchObject({ status: "READY", error: null });
    // The asset is READY inside the job; the job's own row ends just after, once the handler has returned.
    const job = await eventually(async () => {
      const row = await t.app.db.job.findUniqueOrThrow({ where: { id: result.data.reindexAsset.job.id } });
      return ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    });
    expect(job.status).toBe("SUCCEEDED");
    expect(await t.app.vectorStore.count(project.projectId, { assetId: id })).toBeGreaterThan(0);

    // READY assets may be indexed again too; the same vectors are rewritten, none added.
    const vectors = await t.app.vectorStore.count(project.projectId, { assetId: id });
    const again = await t.graphql(REINDEX, { id }, project.key);
    expect(again.errors).toBeUndefined();
    expect(await settled(id)).toMatchObject({ status: "READY", error: null });
    expect(await t.app.vectorStore.count(project.projectId, { assetId: id })).toBe(vectors);
  }, 120_000);

  it("refuses with typed errors and changes nothing: another project's asset, a missing blob, an ingest already queued", async () => {
    const { asset } = await ingestText("Lanterns hung from every balcony on the festival night.");
    expect(await settled(asset.id)).toMatchObject({ status: "READY", error: null });

    const other = await t.createProject();
    const foreign = await t.graphql(REINDEX, { id: asset.id }, other.key);
    expect(foreign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");

    // Two at once: one queues the ingest, the other finds it queued.
    const both = await Promise.all([t.graphql(REINDEX, { id: asset.id }, project.key), t.graphql(REINDEX, { id: asset.id }, project.key)]);
    const codes = both.map((result) => result.errors?.[0]?.extensions?.code ?? "OK").sort();
    expect(codes).toEqual(["CONFLICT", "OK"]);
    expect(await settled(asset.id)).toMatchObject({ status: "READY", error: null });
    expect(await t.app.db.job.count({ where: { assetId: asset.id } })).toBe(2);

    const row = await t.app.db.asset.update({ where: { id: asset.id }, data: { status: "FAILED", error: { code: "SERVICE_UNAVAILABLE", message: "test" } } });
    await t.app.blobs.delete(row.sha256);
    const missing = await t.graphql(REINDEX, { id: asset.id }, project.key);
    expect(missing.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(missing.errors?.[0]?.message).toMatch(/stored bytes .* are gone/);
    expect(await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } })).toMatchObject({ status: "FAILED", error: { code: "SERVICE_UNAVAILABLE" } });
    expect(await t.app.db.job.count({ where: { assetId: asset.id } })).toBe(2);
    await t.app.db.asset.delete({ where: { id: asset.id } }); // the CLI tests below count the project's FAILED assets
  }, 120_000);
});

describe("tessera assets reindex", () => {
  const tessera = (args: string[]) =>
    promisify(execFile)("node", ["bin/tessera.js", ...args], {
      cwd: root,
      env: { ...process.env, TESSERA_URL: t.url.replace(/\/graphql$/, ""), TESSERA_API_KEY: project.key },
    });

  it("--failed queues every FAILED asset of the project, a line per asset, and they end READY", async () => {
    const ids = await failedDuringOutage(["Moss covered the north side of the old wall.", "The clockmaker oiled each gear by lamplight."]);
    const { stdout, stderr } = await tessera(["assets", "reindex", "--failed"]);
    const lines = stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    for (const id of ids) expect(lines.some((line) => /^\[\d\/2\] /.test(line) && line.includes(`${id} queued (job `))).toBe(true);
    expect(stderr).toContain("2 of 2 assets queued for re-indexing");
    for (const id of ids) expect(await settled(id)).toMatchObject({ status: "READY", error: null });

    const none = await tessera(["assets", "reindex", "--failed"]);
    expect(none.stderr).toContain("no FAILED assets");
  }, 120_000);

  it("<id>... queues the given assets and says which it could not", async () => {
    const [id] = await failedDuringOutage(["A heron stood still in the shallow reeds."]);
    const unknown = randomUUID();
    const run = await tessera(["assets", "reindex", id!, unknown]).then(
      (ok) => ({ ...ok, code: 0 }),
      (error: { stdout: string; stderr: string; code: number }) => error,
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`[1/2] ${id} queued (job `);
    expect(run.stdout).toContain(`[2/2] ${unknown} not queued: NOT_FOUND`);
    expect(await settled(id!)).toMatchObject({ status: "READY", error: null });
  }, 120_000);
});
