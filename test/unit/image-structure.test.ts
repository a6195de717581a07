import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { checkImageStructure, type KnownBytes } from "../../services/assets/image-structure.ts";
import { decodeImageToRgb } from "../../services/assets/media-decoders.ts";
import { INSPECT_ENDS_BYTES, inspectMedia } from "../../services/assets/media-inspector.ts";
import { makeJpeg, makeJpegOfSize, makePng, pngWithCorruptPixels, truncatedPng } from "../support/media-fixtures.ts";

const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-structure-"));
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

async function file(bytes: Uint8Array) {
  const filePath = path.join(dir, randomUUID());
  await fs.writeFile(filePath, bytes);
  return filePath;
}

/** The first and last bytes an upload keeps as it is stored (BlobStore.put's `keepEnds`). */
const endsOf = (bytes: Uint8Array, keep = INSPECT_ENDS_BYTES): KnownBytes => ({
  size: bytes.length,
  head: Buffer.from(bytes.subarray(0, keep)),
  tail: Buffer.from(bytes.subarray(Math.max(0, bytes.length - keep))),
});
const outcome = (settled: PromiseSettledResult<void>) => (settled.status === "fulfilled" ? "whole" : String((settled.reason as Error).message));

/** Each file is walked twice, reading the file alone and from the ends kept at upload: both must say the same. */
const check = async (bytes: Uint8Array, mimeType: string) => {
  const filePath = await file(bytes);
  const [fromFile, fromEnds] = await Promise.allSettled([checkImageStructure(filePath, mimeType), checkImageStructure(filePath, mimeType, endsOf(bytes))]);
  expect(outcome(fromEnds), "walked from the kept ends").toBe(outcome(fromFile));
  if (fromFile.status === "rejected") throw fromFile.reason;
};
const noise = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: "#406080", noise: { type: "gaussian", mean: 128, sigma: 50 } } });

describe("whole images pass", () => {
  it.each([
    ["a baseline JPEG", () => makeJpegOfSize(200_000, 3), "image/jpeg"],
    ["a progressive JPEG", () => noise(300, 200).jpeg({ progressive: true }).toBuffer(), "image/jpeg"],
    ["a JPEG with restart markers and EXIF", () => noise(120, 90).withMetadata({ orientation: 6 }).jpeg({ quality: 80 }).toBuffer(), "image/jpeg"],
    ["a PNG", () => makePng(300, 200), "image/png"],
    ["a palette PNG", () => noise(80, 60).png({ palette: true }).toBuffer(), "image/png"],
    ["a GIF", () => noise(40, 30).gif().toBuffer(), "image/gif"],
    ["a lossy WebP", () => noise(40, 30).webp().toBuffer(), "image/webp"],
    ["a lossless WebP with alpha", () => noise(40, 30).ensureAlpha(0.5).webp({ lossless: true }).toBuffer(), "image/webp"],
  ])("%s", async (_name, make, mimeType) => {
    await expect(check(await make(), mimeType)).resolves.toBeUndefined();
  });

  it("a JPEG with bytes after its end marker (a motion photo's video) passes, as decoders show it", async () => {
    await expect(check(Buffer.concat([await makeJpeg(64, 48), Buffer.alloc(300_000, 7)]), "image/jpeg")).resolves.toBeUndefined();
  });
});

describe("truncated images are CORRUPT_MEDIA, wherever they are cut", () => {
  const cuts = [0.02, 0.3, 0.6, 0.95];
  it.each([
    ["JPEG", () => makeJpegOfSize(100_000, 5), "image/jpeg", 1],
    ["progressive JPEG", () => noise(300, 200).jpeg({ progressive: true }).toBuffer(), "image/jpeg", 1],
    ["PNG", () => makePng(300, 200), "image/png", 1],
    // Without only its trailer byte a GIF still decodes (sharp shows it), so it passes; a byte more is its image data.
    ["GIF", () => noise(60, 40).gif().toBuffer(), "image/gif", 2],
    ["WebP", () => noise(60, 40).webp().toBuffer(), "image/webp", 1],
  ])("%s", async (_name, make, mimeType, lastCut) => {
    const whole = await make();
    for (const cut of cuts) {
      const cutAt = Math.max(14, Math.floor(whole.length * cut));
      await expect(check(whole.subarray(0, cutAt), mimeType), `cut at ${cutAt} of ${whole.length}`).rejects.toMatchObject({ code: "CORRUPT_MEDIA" });
    }
    // Cut by only its last bytes: a JPEG loses EOI, a PNG its IEND, a GIF its last data block's end, a WebP part of its chunk.
    await expect(check(whole.subarray(0, whole.length - lastCut), mimeType)).rejects.toMatchObject({ code: "CORRUPT_MEDIA" });
  });

  it("the test fixture's truncated PNG, through inspectMedia, with the reason", async () => {
    const error = await inspectMedia(await file(await truncatedPng()), {}, { maxImagePixels: 10_000_000, toolTimeoutMs: 30_000 }).catch((e) => e);
    expect(error).toMatchObject({ code: "CORRUPT_MEDIA", details: { reason: expect.stringMatching(/^truncated: it ends inside its IDAT chunk/) } });
  });

  it("a PNG whose IDAT fails its CRC is CORRUPT_MEDIA", async () => {
    const png = Buffer.from(await makePng(64, 48));
    png[png.indexOf("IDAT", 8, "latin1") + 10]! ^= 0xff;
    await expect(check(png, "image/png")).rejects.toMatchObject({ code: "CORRUPT_MEDIA", details: { reason: expect.stringContaining("CRC") } });
  });
});

describe("what the upload leaves to the ingest job", () => {
  it("a PNG whose chunks are whole but whose pixels do not inflate passes the upload's checks and fails the decode", async () => {
    const filePath = await file(await pngWithCorruptPixels());
    const inspected = await inspectMedia(filePath, {}, { maxImagePixels: 10_000_000, toolTimeoutMs: 30_000 });
    expect(inspected).toMatchObject({ modality: "IMAGE", mimeType: "image/png", media: { width: 64, height: 48 } });
    await expect(decodeImageToRgb(filePath, { maxSide: 1024, maxPixels: 10_000_000 })).rejects.toMatchObject({ code: "CORRUPT_MEDIA" });
  });
});

describe("the ends kept at upload", () => {
  const limits = { maxImagePixels: 10_000_000, toolTimeoutMs: 30_000 };
  /** A JPEG whose marker segments run past the kept head: two APP15 segments of 64 KB after its start marker. */
  const withLongHeader = (jpeg: Buffer) => {
    const segment = Buffer.alloc(2 + 65535, 0x20);
    segment.writeUInt16BE(0xffef, 0);
    segment.writeUInt16BE(65535, 2);
    return Buffer.concat([jpeg.subarray(0, 2), segment, segment, jpeg.subarray(2)]);
  };

  it("a JPEG is described and walked from them alone: its file is never opened", async () => {
    const jpeg = await makeJpegOfSize(300_000, 9);
    const gone = path.join(dir, "never-written.jpg");
    const described = await inspectMedia(gone, { filename: "a.jpg" }, limits, endsOf(jpeg));
    expect(described).toEqual(await inspectMedia(await file(jpeg), { filename: "a.jpg" }, limits));
    expect(described).toMatchObject({ modality: "IMAGE", mimeType: "image/jpeg", media: { width: expect.any(Number), codec: "jpeg" } });
  });

  it("a JPEG whose header runs past the kept head is read from its file, with the same answer", async () => {
    const jpeg = withLongHeader(await makeJpeg(64, 48));
    const filePath = await file(jpeg);
    expect(await inspectMedia(filePath, {}, limits, endsOf(jpeg))).toEqual(await inspectMedia(filePath, {}, limits));
    await expect(inspectMedia(path.join(dir, "never-written.jpg"), {}, limits, endsOf(jpeg))).rejects.toThrow();
    // Cut inside its image data: refused from the ends and the file alike.
    await expect(check(jpeg.subarray(0, jpeg.length - 200), "image/jpeg")).rejects.toMatchObject({ code: "CORRUPT_MEDIA" });
  });

  it("a PNG's CRCs are checked against its file between the ends", async () => {
    const png = Buffer.from(await makePng(400, 300));
    expect(png.length).toBeGreaterThan(2 * INSPECT_ENDS_BYTES);
    png[Math.floor(png.length / 2)]! ^= 0xff;
    await expect(check(png, "image/png")).rejects.toMatchObject({ code: "CORRUPT_MEDIA", details: { reason: expect.stringContaining("CRC") } });
  });
});
