import fs from "node:fs/promises";
import { request } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
let project: { key: string; projectId: string };
beforeAll(async () => {
  t = await startTestApp();
  project = await t.createProject();
});
afterAll(async () => {
  await t?.close();
});

/** Sizes of the blob store's half-written files. */
async function partialBlobSizes() {
  const dir = path.join(t.app.config.dataDir, "tmp");
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const sizes = await Promise.all(names.map((name) => fs.stat(path.join(dir, name)).then((stat) => stat.size, () => 0)));
  return sizes;
}

it("writes an upload to disk while it is still arriving, and stores it whole when it ends", async () => {
  const boundary = "tessera-streaming-test";
  const line = "Tessera streams uploads straight into the blob store, piece by piece.\n";
  const chunk = Buffer.from(line.repeat(Math.ceil((256 * 1024) / line.length)));
  const firstHalf = 40; // chunks of ~256 KiB: ~10 MB before the pause
  const operations = JSON.stringify({
    query: "mutation ($file: Upload!) { ingest(input: { file: $file }) { asset { modality mimeType byteSize sha256 } } }",
    variables: { file: null },
  });
  const response = new Promise<string>((resolve, reject) => {
    const req = request(t.url, {
      method: "POST",
      headers: { authorization: `Bearer ${project.key}`, "content-type": `multipart/form-data; boundary=${boundary}` },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      let body = "";
      res.on("data", (data) => (body += data));
      res.on("end", () => resolve(body));
    });
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n`);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n`);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="long.txt"\r\nContent-Type: text/plain\r\n\r\n`);
    for (let i = 0; i < firstHalf; i++) req.write(chunk);
    // Half sent, the request still open: the bytes must already be on disk, not held in memory.
    eventually(async () => (await partialBlobSizes()).some((size) => size > 5 * 1024 * 1024), 30_000).then(
      () => {
        for (let i = 0; i < firstHalf; i++) req.write(chunk);
        req.end(`\r\n--${boundary}--\r\n`);
      },
      (error) => {
        req.destroy();
        reject(error);
      },
    );
  });
  const result = JSON.parse(await response);
  expect(result.errors).toBeUndefined();
  expect(result.data.ingest.asset).toMatchObject({ modality: "TEXT", mimeType: "text/plain", byteSize: chunk.length * firstHalf * 2 });
  expect(await partialBlobSizes()).toEqual([]);
  const stored = await fs.stat(await t.app.blobs.localPath(result.data.ingest.asset.sha256));
  expect(stored.size).toBe(chunk.length * firstHalf * 2);
});
