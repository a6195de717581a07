import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { uploadFile } from "../support/graphql-upload.ts";
import { makeJpegOfSize, makePng, pngDeclaring, randomBytes, truncatedPng, wavWithLyingHeader } from "../support/media-fixtures.ts";
import { startTestApp, type GraphQLResponse, type TestApp } from "../support/test-app.ts";

const LIMIT = 1024 * 1024;
// Blobs are shared by content across projects, and the test database is shared by concurrent runs: bytes unique
// to this run keep another run's rows from counting as references to this run's blobs.
const runTag = randomUUID();

let t: TestApp;
let redirector: Server;
let redirectorBase: string;
let gatewayPort: number;

beforeAll(async () => {
  // An allow-listed server that sends callers on to addresses they must never reach.
  redirector = createServer((request, response) => {
    const targets: Record<string, string> = {
      "/to-metadata": "http://169.254.169.254/latest/meta-data/",
      "/to-loopback": `http://127.0.0.1:${gatewayPort}/graphql`,
      "/to-localhost": `http://localhost:${gatewayPort}/graphql`,
      "/to-file": "file:///etc/passwd",
    };
    const target = targets[request.url ?? ""];
    if (target) return response.writeHead(302, { location: target }).end();
    if (request.url === "/huge") {
      response.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (!response.destroyed && response.write(chunk));
      };
      response.on("drain", pump);
      return pump();
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => redirector.listen(0, "127.0.0.1", resolve));
  redirectorBase = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
  t = await startTestApp({ env: { MAX_UPLOAD_BYTES: String(LIMIT), URL_ALLOW_HOSTS: new URL(redirectorBase).host } });
  gatewayPort = Number(new URL(t.url).port);
});
afterAll(async () => {
  await t?.close();
  redirector?.closeAllConnections();
  redirector?.close();
});

let project: { key: string; projectId: string };
beforeAll(async () => {
  project = await t.createProject();
});

/** Every file the blob store holds: blobs and its half-written temporary files alike. */
async function storedFiles(): Promise<string[]> {
  const folders = ["blobs", "tmp"].map((folder) => path.join(t.app.config.dataDir, folder));
  return (await Promise.all(folders.map(filesUnder))).flat();
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  const nested = await Promise.all(
    entries.map((entry) => (entry.isDirectory() ? filesUnder(path.join(dir, entry.name)) : [path.join(dir, entry.name)])),
  );
  return nested.flat();
}

async function expectRefused(response: GraphQLResponse, code: string) {
  expect(response.data?.ingest ?? null).toBeNull();
  expect(response.errors?.[0]?.extensions?.code, JSON.stringify(response.errors)).toBe(code);
  expect(JSON.stringify(response)).not.toMatch(/at .*\.ts:\d+/); // no stack trace
}

afterEach(async () => {
  // Nothing written: no row, no job, no blob, no half-written temporary file; and the server still answers.
  expect(await t.app.db.asset.count({ where: { projectId: project.projectId } })).toBe(0);
  expect(await t.app.db.job.count({ where: { projectId: project.projectId } })).toBe(0);
  expect(await storedFiles()).toEqual([]);
  const health = await t.graphql("{ health { status } }");
  expect(health.data.health.status).toBe("OK");
});

const upload = (bytes: Uint8Array, filename: string, mimeType?: string) => uploadFile(t.url, project.key, { bytes, filename, mimeType });

describe("refused uploads", () => {
  it("a truncated PNG is CORRUPT_MEDIA", async () => {
    await expectRefused(await upload(await truncatedPng(), "cut.png", "image/png"), "CORRUPT_MEDIA");
  });

  it("a JPEG cut inside its image data (no end marker) is CORRUPT_MEDIA, from its structure: no pixel is decoded at upload", async () => {
    const jpeg = await makeJpegOfSize(200_000, 11);
    const response = await upload(jpeg.subarray(0, Math.floor(jpeg.length * 0.8)), "cut.jpg", "image/jpeg");
    await expectRefused(response, "CORRUPT_MEDIA");
    expect(response.errors![0]!.extensions!.details).toMatchObject({ reason: "truncated: it has no end marker (EOI) after its image data" });
  });

  it("a PNG declaring 50000x50000 pixels is refused from its header (PAYLOAD_TOO_LARGE)", async () => {
    const bomb = await pngDeclaring(50_000, 50_000);
    expect(bomb.length).toBeLessThan(1000);
    const response = await upload(bomb, "bomb.png", "image/png");
    await expectRefused(response, "PAYLOAD_TOO_LARGE");
    expect(response.errors![0]!.extensions!.details).toMatchObject({ width: 50_000, height: 50_000 });
  });

  it("a text file renamed .jpg is UNSUPPORTED_MEDIA_TYPE", async () => {
    await expectRefused(await upload(Buffer.from(`just some words ${runTag}\n`), "holiday.jpg", "image/jpeg"), "UNSUPPORTED_MEDIA_TYPE");
  });

  it("a WAV whose header lies (zero channels) is CORRUPT_MEDIA", async () => {
    await expectRefused(await upload(Buffer.concat([await wavWithLyingHeader(), Buffer.from(runTag)]), "tone.wav", "audio/wav"), "CORRUPT_MEDIA");
  });

  it("random bytes named .mp4 are UNSUPPORTED_MEDIA_TYPE", async () => {
    await expectRefused(await upload(Buffer.concat([randomBytes(200_000), Buffer.from(runTag)]), "movie.mp4", "video/mp4"), "UNSUPPORTED_MEDIA_TYPE");
  });

  it("a broken PDF is CORRUPT_MEDIA", async () => {
    await expectRefused(await upload(Buffer.from(`%PDF-1.7\n1 0 obj << /Type /Catalog /Id (${runTag}) >>\n`), "paper.pdf", "application/pdf"), "CORRUPT_MEDIA");
  });

  it("an empty file is BAD_USER_INPUT", async () => {
    await expectRefused(await upload(new Uint8Array(0), "empty.png", "image/png"), "BAD_USER_INPUT");
  });

  it("a file over the size limit is stopped at the limit while streaming (PAYLOAD_TOO_LARGE)", async () => {
    // Within the request size allowance, so the bytes really flow until the blob store stops them.
    const overLimit = Buffer.concat([await makePng(8, 8), Buffer.alloc(LIMIT)]);
    await expectRefused(await upload(overLimit, "big.png", "image/png"), "PAYLOAD_TOO_LARGE");
  });

  it("a request declaring more than the limit is refused before its body is read", async () => {
    await expectRefused(await upload(Buffer.alloc(3 * LIMIT), "huge.png", "image/png"), "PAYLOAD_TOO_LARGE");
  });

  it("an endless upload is answered with PAYLOAD_TOO_LARGE long before the client stops sending", async () => {
    const { body, sent } = await endlessUpload(64 * LIMIT);
    await expectRefused(JSON.parse(body), "PAYLOAD_TOO_LARGE");
    expect(sent).toBeLessThan(16 * LIMIT);
  });

  it("file and text together are BAD_USER_INPUT, and the file is not kept", async () => {
    const response = await uploadFile(
      t.url,
      project.key,
      { bytes: await makePng(8, 8), filename: "a.png" },
      { query: `mutation ($file: Upload!) { ingest(input: { file: $file, text: "and text" }) { asset { id } } }` },
    );
    await expectRefused(response, "BAD_USER_INPUT");
  });

  it("a string where the file goes (a JSON request) is BAD_USER_INPUT", async () => {
    const response = await t.graphql(`mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { id } } }`, { file: "aGVsbG8=" }, project.key);
    await expectRefused(response, "BAD_USER_INPUT");
  });

  it("too many or too long tags, or an empty idempotency key, are BAD_USER_INPUT", async () => {
    const ingest = (variables: { tags?: string[]; k?: string }) =>
      t.graphql(
        `mutation ($text: String!, $tags: [String!], $k: String) { ingest(input: { text: $text, tags: $tags, idempotencyKey: $k }) { asset { id } } }`,
        { text: `t ${runTag}`, ...variables },
        project.key,
      );
    await expectRefused(await ingest({ tags: Array.from({ length: 51 }, (_, i) => `tag${i}`) }), "BAD_USER_INPUT");
    await expectRefused(await ingest({ tags: ["x".repeat(101)] }), "BAD_USER_INPUT");
    await expectRefused(await ingest({ k: "" }), "BAD_USER_INPUT");
  });

  it("url and text together are BAD_USER_INPUT", async () => {
    const response = await t.graphql(
      `mutation { ingest(input: { url: "${redirectorBase}/x", text: "and text" }) { asset { id } } }`,
      undefined,
      project.key,
    );
    await expectRefused(response, "BAD_USER_INPUT");
  });
});

describe("refused URLs (SSRF)", () => {
  const ingestUrl = (url: string) =>
    t.graphql(`mutation ($url: String!) { ingest(input: { url: $url }) { asset { id } } }`, { url }, project.key);

  it.each([
    ["the gateway itself on 127.0.0.1", () => `http://127.0.0.1:${gatewayPort}/graphql`],
    ["the cloud metadata address", () => "http://169.254.169.254/latest/meta-data/"],
    ["localhost by name", () => `http://localhost:${gatewayPort}/`],
    ["IPv6 loopback", () => `http://[::1]:${gatewayPort}/`],
    ["IPv4-mapped IPv6 loopback", () => `http://[::ffff:127.0.0.1]:${gatewayPort}/`],
    ["loopback written as a number", () => `http://2130706433:${gatewayPort}/`],
    ["a private network", () => "http://10.0.0.1/"],
    ["carrier-grade NAT", () => "http://100.64.0.1/"],
    ["unspecified 0.0.0.0", () => `http://0.0.0.0:${gatewayPort}/`],
    ["a file URL", () => "file:///etc/passwd"],
  ])("refuses %s with URL_NOT_ALLOWED", async (_name, url) => {
    await expectRefused(await ingestUrl(url()), "URL_NOT_ALLOWED");
  });

  it.each(["/to-metadata", "/to-loopback", "/to-localhost", "/to-file"])(
    "refuses an allowed server's redirect %s with URL_NOT_ALLOWED",
    async (route) => {
      await expectRefused(await ingestUrl(`${redirectorBase}${route}`), "URL_NOT_ALLOWED");
    },
  );

  it("stops a body that never ends at the size limit", async () => {
    await expectRefused(await ingestUrl(`${redirectorBase}/huge`), "PAYLOAD_TOO_LARGE");
  });

  it("reports a missing page as FETCH_FAILED", async () => {
    await expectRefused(await ingestUrl(`${redirectorBase}/missing.png`), "FETCH_FAILED");
  });
});

/** Streams a multipart upload with no Content-Length, 64 KiB at a time, until the server answers or `maxBytes` are sent. */
function endlessUpload(maxBytes: number): Promise<{ body: string; sent: number }> {
  const boundary = "tessera-endless-upload";
  const part = (headers: string, content: string) => `--${boundary}\r\n${headers}\r\n\r\n${content}\r\n`;
  const preamble =
    part('Content-Disposition: form-data; name="operations"', JSON.stringify({ query: `mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { id } } }`, variables: { file: null } })) +
    part('Content-Disposition: form-data; name="map"', JSON.stringify({ "0": ["variables.file"] })) +
    `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="endless.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const request = httpRequest(t.url, {
      method: "POST",
      headers: { authorization: `Bearer ${project.key}`, "content-type": `multipart/form-data; boundary=${boundary}` },
    });
    request.on("response", (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        request.destroy();
        resolve({ body: Buffer.concat(chunks).toString("utf8"), sent });
      });
    });
    request.on("error", (error) => {
      if (!answered) reject(error);
    });
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = () => {
      while (!answered && sent < maxBytes) {
        sent += chunk.length;
        if (!request.write(chunk)) return void request.once("drain", pump);
      }
    };
    request.write(preamble);
    pump();
  });
}
