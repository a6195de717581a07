import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signContentPath } from "../../services/assets/content-urls.ts";
import { uploadFile } from "../support/graphql-upload.ts";
import { makePng, makeWav } from "../support/media-fixtures.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Content out (issue #19): `Asset.contentUrl` is a short-lived signed URL the
 * gateway serves with byte ranges, `thumbnailUrl` a preview of an image, and
 * `Asset.text` what the asset was indexed by. Real gateway, database and blob store.
 */
let t: TestApp;
let a: { key: string; projectId: string };
let b: { key: string; projectId: string };
let wav: Buffer;
let wavAsset: { id: string; contentUrl: string; thumbnailUrl: string | null; contentUrlExpiresAt: string };

const ASSET = `query ($id: ID!) { asset(id: $id) { id contentUrl thumbnailUrl contentUrlExpiresAt } }`;

beforeAll(async () => {
  t = await startTestApp({ worker: true, env: { TEXT_CHUNK_CHARS: "40", TEXT_CHUNK_OVERLAP: "0" } });
  a = await t.createProject();
  b = await t.createProject();
  wav = await makeWav(1);
  const uploaded = await uploadFile(t.url, a.key, { bytes: wav, filename: "tone.wav", mimeType: "audio/wav" });
  expect(uploaded.errors).toBeUndefined();
  const answer = await t.graphql(ASSET, { id: uploaded.data.ingest.asset.id }, a.key);
  expect(answer.errors).toBeUndefined();
  wavAsset = answer.data.asset;
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe("Asset.contentUrl", () => {
  it("is an absolute URL on the gateway that expires after CONTENT_URL_TTL_SECONDS", () => {
    const url = new URL(wavAsset.contentUrl);
    expect(url.origin).toBe(new URL(t.url).origin);
    expect(url.pathname).toBe(`/content/${a.projectId}/${wavAsset.id}`);
    const ttl = new Date(wavAsset.contentUrlExpiresAt).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(t.app.config.CONTENT_URL_TTL_SECONDS * 1000);
    expect(wavAsset.thumbnailUrl).toBeNull();
  });

  it("serves the whole WAV, then byte ranges (206 with Content-Range), so a browser can seek", async () => {
    const whole = await fetch(wavAsset.contentUrl);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    expect(whole.headers.get("content-type")).toMatch(/^audio\//);
    expect(Buffer.from(await whole.arrayBuffer()).equals(wav)).toBe(true);

    const first = await fetch(wavAsset.contentUrl, { headers: { range: "bytes=0-99" } });
    expect(first.status).toBe(206);
    expect(first.headers.get("content-range")).toBe(`bytes 0-99/${wav.length}`);
    expect(first.headers.get("content-length")).toBe("100");
    expect(Buffer.from(await first.arrayBuffer()).equals(wav.subarray(0, 100))).toBe(true);

    const middle = await fetch(wavAsset.contentUrl, { headers: { range: "bytes=1000-" } });
    expect(middle.status).toBe(206);
    expect(middle.headers.get("content-range")).toBe(`bytes 1000-${wav.length - 1}/${wav.length}`);
    expect(Buffer.from(await middle.arrayBuffer()).equals(wav.subarray(1000))).toBe(true);

    const tail = await fetch(wavAsset.contentUrl, { headers: { range: "bytes=-10" } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer()).equals(wav.subarray(wav.length - 10))).toBe(true);

    const head = await fetch(wavAsset.contentUrl, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(wav.length));
  });

  it("answers a range past the end with 416 and the size", async () => {
    const response = await fetch(wavAsset.contentUrl, { headers: { range: `bytes=${wav.length}-` } });
    expect(response.status).toBe(416);
    expect(response.headers.get("content-range")).toBe(`bytes */${wav.length}`);
  });

  it("refuses a tampered, an unsigned or an expired URL with 403, and serves nothing", async () => {
    const tampered = new URL(wavAsset.contentUrl);
    const sig = tampered.searchParams.get("sig")!;
    tampered.searchParams.set("sig", (sig[0] === "A" ? "B" : "A") + sig.slice(1));
    const longer = new URL(wavAsset.contentUrl);
    longer.searchParams.set("expires", String(Number(longer.searchParams.get("expires")) + 3600));
    const unsigned = new URL(wavAsset.contentUrl);
    unsigned.search = "";
    const expired = new URL(
      signContentPath(t.app.config, { projectId: a.projectId, assetId: wavAsset.id, variant: "original" }, Date.now() - 2 * 3600_000).path,
      t.url,
    );
    for (const url of [tampered, longer, unsigned, expired]) {
      const response = await fetch(url);
      expect(response.status, url.toString()).toBe(403);
      const body = (await response.json()) as { error: string };
      expect(body.error).toMatch(expired === url ? /expired/ : /sign/);
    }
  });

  it("never reaches another project's asset", async () => {
    const theirs = await t.graphql(`mutation { ingest(input: { text: "project b's secret words" }) { asset { id contentUrl } } }`, {}, b.key);
    expect(theirs.errors).toBeUndefined();
    const bAsset = theirs.data.ingest.asset as { id: string; contentUrl: string };
    // A's signed URL with B's asset id in it: the signature covers the asset, so it no longer matches.
    const swapped = new URL(wavAsset.contentUrl.replace(wavAsset.id, bAsset.id));
    expect((await fetch(swapped)).status).toBe(403);
    // B's own URL with A's project in it: the same.
    const crossed = new URL(bAsset.contentUrl.replace(b.projectId, a.projectId));
    expect((await fetch(crossed)).status).toBe(403);
    // A's key cannot sign B's asset: `asset` is project-scoped.
    const asked = await t.graphql(ASSET, { id: bAsset.id }, a.key);
    expect(asked.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    // A URL signed for a project that does not own the asset finds nothing.
    const foreign = signContentPath(t.app.config, { projectId: a.projectId, assetId: bAsset.id, variant: "original" }).path;
    expect((await fetch(new URL(foreign, t.url))).status).toBe(404);
    // B's own URL works.
    const own = await fetch(bAsset.contentUrl);
    expect(own.status).toBe(200);
    expect(await own.text()).toBe("project b's secret words");
  });

  it("stops serving a deleted asset", async () => {
    const made = await t.graphql(`mutation { ingest(input: { text: "soon gone" }) { asset { id contentUrl } } }`, {}, a.key);
    const { id, contentUrl } = made.data.ingest.asset;
    expect((await fetch(contentUrl)).status).toBe(200);
    expect((await t.graphql(`mutation ($id: ID!) { deleteAsset(id: $id) { id } }`, { id }, a.key)).errors).toBeUndefined();
    expect((await fetch(contentUrl)).status).toBe(404);
  });
});

describe("Asset.thumbnailUrl", () => {
  it("is a small WebP of an image", async () => {
    const png = await makePng(800, 600);
    const uploaded = await uploadFile(t.url, a.key, { bytes: png, filename: "big.png", mimeType: "image/png" });
    expect(uploaded.errors).toBeUndefined();
    const answer = await t.graphql(ASSET, { id: uploaded.data.ingest.asset.id }, a.key);
    const response = await fetch(answer.data.asset.thumbnailUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/webp");
    const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    expect(meta.format).toBe("webp");
    expect(Math.max(meta.width!, meta.height!)).toBe(320);
  });
});

describe("Asset.text", () => {
  const TEXT = "The first sentence is about whales. The second one is about coffee beans. The third talks of trains.";

  it("lists the chunks a text asset was indexed by, with character offsets, and keeps them off `media`", async () => {
    const made = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`, { text: TEXT }, a.key);
    expect(made.errors).toBeUndefined();
    const { asset, job } = made.data.ingest;
    const finished = await eventually(async () => {
      const row = await t.app.db.job.findUnique({ where: { id: job.id } });
      return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
    }, 120_000);
    expect(finished.status).toBe("SUCCEEDED");
    const answer = await t.graphql(`query ($id: ID!) { asset(id: $id) { media text { kind text start end } } }`, { id: asset.id }, a.key);
    expect(answer.errors).toBeUndefined();
    const spans = answer.data.asset.text as Array<{ kind: string; text: string; start: number; end: number }>;
    expect(spans.length).toBeGreaterThan(1);
    for (const span of spans) {
      expect(span.kind).toBe("CHUNK");
      expect(span.text).toBe(TEXT.slice(span.start, span.end));
    }
    expect(answer.data.asset.media.indexedText).toBeUndefined();
    // Kept on the row by the ingest, not chunked again on each read.
    const row = await t.app.db.asset.findUniqueOrThrow({ where: { id: asset.id } });
    expect((row.media as { indexedText?: unknown[] }).indexedText).toEqual(spans);
    // Paged with offset and limit.
    const page = await t.graphql(`query ($id: ID!) { asset(id: $id) { text(offset: 1, limit: 1) { text } } }`, { id: asset.id }, a.key);
    expect(page.data.asset.text).toEqual([{ text: spans[1]!.text }]);
    const bad = await t.graphql(`query ($id: ID!) { asset(id: $id) { text(limit: 5000) { text } } }`, { id: asset.id }, a.key);
    expect(bad.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  }, 150_000);
});
