import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { checkImageStructure } from "../../services/assets/image-structure.ts";
import { decodeImageToRgb } from "../../services/assets/media-decoders.ts";
import { inspectMedia } from "../../services/assets/media-inspector.ts";
import { makeJpeg, makeJpegOfSize, makePng, pngWithCorruptPixels, truncatedPng } from "../support/media-fixtures.ts";

const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-structure-"));
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

async function file(bytes: Uint8Array) {
  const filePath = path.join(dir, randomUUID());
  await fs.writeFile(filePath, bytes);
  return filePath;
}

const check = async (bytes: Uint8Array, mimeType: string) => checkImageStructure(await file(bytes), mimeType);
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
