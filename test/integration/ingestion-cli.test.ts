import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePng, makeWav } from "../support/media-fixtures.ts";
import { createGateway } from "../../services/gateway/gateway.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
let t: TestApp;
let project: { key: string; projectId: string };
let folder: string;
let server: Server;
let remote: string;

/** The CLI as a user runs it, against the test gateway (or whatever `url` names). */
function tessera(args: string[], url = t.url, key = project.key) {
  return promisify(execFile)("node", ["bin/tessera.js", ...args], {
    cwd: root,
    env: { ...process.env, TESSERA_URL: url, TESSERA_API_KEY: key },
  }).then(
    (result) => ({ ...result, code: 0 }),
    (error) => ({ stdout: error.stdout as string, stderr: error.stderr as string, code: error.code as number }),
  );
}

beforeAll(async () => {
  const remotePng = await makePng(20, 20);
  server = createServer((_request, response) => response.writeHead(200, { "content-type": "image/png" }).end(remotePng));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  remote = `http://127.0.0.1:${(server.address() as AddressInfo).port}/remote.png`;
  // No model manifests: the CLI is under test here, not whichever encoder weights a checkout has.
  t = await startTestApp({ worker: true, noModels: true, env: { URL_ALLOW_HOSTS: new URL(remote).host } });
  project = await t.createProject();
  folder = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-cli-ingest-"));
  await fs.mkdir(path.join(folder, "sounds"));
  await fs.writeFile(path.join(folder, "a.png"), await makePng(16, 16));
  await fs.writeFile(path.join(folder, "b.png"), await makePng(17, 16));
  await fs.writeFile(path.join(folder, "sounds", "tone.wav"), await makeWav(1, 8000));
  await fs.writeFile(path.join(folder, "notes.md"), "# Notes\n\nTessera tiles.\n");
  await fs.writeFile(path.join(folder, ".hidden"), "not me");
});
afterAll(async () => {
  await t?.close();
  server?.close();
  if (folder) await fs.rm(folder, { recursive: true, force: true });
});

describe("npx tessera ingest", () => {
  it("uploads a folder's files and a URL, waits for their jobs, and prints one line each", async () => {
    const { stdout, stderr, code } = await tessera(["ingest", folder, remote, "--wait", "--tag", "cli", "--metadata", '{"batch":1}']);
    expect(code, stderr).toBe(0);
    const lines = stdout.trim().split("\n").map((line) => line.split("\t"));
    expect(lines).toHaveLength(5);
    const bySource = Object.fromEntries(lines.map(([id, modality, mimeType, status, source]) => [path.basename(source!), { id, modality, mimeType, status }]));
    expect(bySource).toMatchObject({
      "a.png": { modality: "IMAGE", mimeType: "image/png", status: "SUCCEEDED" },
      "b.png": { modality: "IMAGE", status: "SUCCEEDED" },
      "tone.wav": { modality: "AUDIO", mimeType: "audio/wav", status: "SUCCEEDED" },
      "notes.md": { modality: "TEXT", mimeType: "text/markdown", status: "SUCCEEDED" },
      "remote.png": { modality: "IMAGE", status: "SUCCEEDED" },
    });
    const assets = await t.app.db.asset.findMany({ where: { projectId: project.projectId } });
    expect(assets).toHaveLength(5);
    for (const asset of assets) expect(asset).toMatchObject({ tags: ["cli"], metadata: { batch: 1 }, status: "READY" });
    expect(assets.find((asset) => asset.source === "url")?.sourceUrl).toBe(remote);
  });

  it("reports a refused file with its code, ingests the rest, and exits non-zero", async () => {
    const bad = path.join(folder, "fake.jpg");
    await fs.writeFile(bad, "this is text, not a JPEG\n");
    const good = path.join(folder, "c.png");
    await fs.writeFile(good, await makePng(18, 16));
    const { stdout, stderr, code } = await tessera(["ingest", bad, good]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/fake\.jpg.*UNSUPPORTED_MEDIA_TYPE/);
    expect(stderr).toMatch(/1 of 2 failed/);
    expect(stdout).toMatch(/IMAGE\timage\/png\t\w+\t.*c\.png/);
  });

  it("--wait follows each job through the jobEvents subscription, and never polls job(id)", async () => {
    // A recording proxy in front of the gateway: what the CLI asked, and what came back on each event stream.
    const exchanges: Array<{ accept: string; body: string; answer: string }> = [];
    const gateway = new URL(t.url);
    const proxy = createServer(async (incoming, outgoing) => {
      const chunks: Buffer[] = [];
      for await (const chunk of incoming) chunks.push(chunk as Buffer);
      const exchange = { accept: incoming.headers.accept ?? "", body: Buffer.concat(chunks).toString("latin1"), answer: "" };
      exchanges.push(exchange);
      const upstream = request({ host: gateway.hostname, port: gateway.port, path: incoming.url, method: incoming.method, headers: incoming.headers });
      upstream.on("response", (answer: IncomingMessage) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on("data", (chunk: Buffer) => {
          exchange.answer += chunk.toString("utf8");
          outgoing.write(chunk);
        });
        answer.on("end", () => outgoing.end());
      });
      upstream.end(Buffer.concat(chunks));
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    try {
      const file = path.join(folder, "d.png");
      await fs.writeFile(file, await makePng(19, 16));
      const { stdout, stderr, code } = await tessera(["ingest", file, "--wait"], `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
      expect(code, stderr).toBe(0);
      expect(stdout).toMatch(/\tSUCCEEDED\t.*d\.png$/m);
      const subscriptions = exchanges.filter((exchange) => exchange.body.includes("jobEvents"));
      expect(subscriptions).toHaveLength(1);
      expect(subscriptions[0]!.accept).toContain("text/event-stream");
      expect(subscriptions[0]!.answer).toMatch(/"status":"SUCCEEDED"/);
      expect(exchanges.filter((exchange) => /\bjob\s*\(/.test(exchange.body))).toEqual([]);
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it("tells a gateway that went away mid-run from a file that failed, and says how to resume", async () => {
    const own = await t.createProject();
    const batch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-cli-gone-"));
    await fs.writeFile(path.join(batch, "1-bad.jpg"), "this is text, not a JPEG\n");
    for (const [index, name] of ["2-a.png", "3-b.png", "4-c.png", "5-d.png"].entries()) await fs.writeFile(path.join(batch, name), await makePng(30 + index, 12));
    // A gateway of its own, stopped once the first file is stored, while the CLI is mid-run.
    const gateway = createGateway(t.app);
    const { port } = await gateway.listen(0, "127.0.0.1");
    const run = tessera(["ingest", batch, "--wait", "--concurrency", "1"], `http://127.0.0.1:${port}`, own.key);
    while ((await t.app.db.asset.count({ where: { projectId: own.projectId } })) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await gateway.close();
    try {
      const { stdout, stderr, code } = await run;
      expect(code, stderr).toBe(75);
      expect(stderr).toMatch(/^error\t.*1-bad\.jpg\tUNSUPPORTED_MEDIA_TYPE/m);
      expect(stderr).toMatch(/^1 of 5 failed$/m);
      expect(stderr).toMatch(/^the gateway went away: /m);
      const unconfirmed = [...stderr.matchAll(/^unconfirmed\t(.*)$/gm)].map((match) => path.basename(match[1]!));
      expect(unconfirmed).toContain("5-d.png");
      const confirmed = stdout.trim().split("\n").filter(Boolean);
      expect(confirmed.length + unconfirmed.length).toBe(4);
      expect(stderr).toContain(
        `${unconfirmed.length} of 5 ${unconfirmed.length === 1 ? "file was" : "files were"} not confirmed: run the same command again; files already ingested are recognised by their content and not stored twice`,
      );
      const before = await t.app.db.asset.findMany({ where: { projectId: own.projectId } });

      // The same command again, with the gateway back: the rest is ingested, nothing is stored twice.
      const again = await tessera(["ingest", batch, "--wait", "--concurrency", "1"], t.url, own.key);
      expect(again.code, again.stderr).toBe(1);
      expect(again.stderr).not.toMatch(/went away|unconfirmed/);
      expect(again.stdout.trim().split("\n")).toHaveLength(4);
      const after = await t.app.db.asset.findMany({ where: { projectId: own.projectId } });
      expect(after).toHaveLength(4);
      for (const asset of before) expect(after.map((row) => row.id)).toContain(asset.id);
    } finally {
      await fs.rm(batch, { recursive: true, force: true });
    }
  }, 60_000);

  it("says how to fix a missing API key", async () => {
    const result = await promisify(execFile)("node", ["bin/tessera.js", "ingest", folder], {
      cwd: root,
      env: { ...process.env, TESSERA_URL: t.url, TESSERA_API_KEY: "" },
    }).catch((error) => error);
    expect(result.stderr).toMatch(/TESSERA_API_KEY/);
  });
});
