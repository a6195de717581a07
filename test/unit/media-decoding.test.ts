import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { decodeAudioToPcm, decodeImageToRgb, sampleVideoFrames } from "../../services/assets/media-decoders.ts";
import { makeMp4, makeRotatedMp4, makeWav } from "../support/media-fixtures.ts";

const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-decode-"));
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

async function file(bytes: Uint8Array) {
  const name = path.join(dir, randomUUID());
  await fs.writeFile(name, bytes);
  return name;
}

const imageOptions = { maxSide: 64, maxPixels: 10_000_000 };

describe("decodeImageToRgb", () => {
  it("gives 3 channels for a grayscale image", async () => {
    const gray = await sharp({ create: { width: 10, height: 6, channels: 3, background: "#808080" } }).toColourspace("b-w").png().toBuffer();
    expect((await sharp(gray).metadata()).channels).toBe(1);
    const image = await decodeImageToRgb(await file(gray), imageOptions);
    expect(image).toMatchObject({ width: 10, height: 6 });
    expect(image.rgb.length).toBe(10 * 6 * 3);
  });

  it("flattens transparency onto white", async () => {
    const clear = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const image = await decodeImageToRgb(await file(clear), imageOptions);
    expect([...image.rgb.subarray(0, 3)]).toEqual([255, 255, 255]);
  });

  it("applies EXIF orientation and caps the longest side, keeping the aspect", async () => {
    // Stored 200x100, tagged "rotate 90": upright it is 100x200, then scaled to 32x64.
    const tagged = await sharp({ create: { width: 200, height: 100, channels: 3, background: "#ff0000" } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const image = await decodeImageToRgb(await file(tagged), imageOptions);
    expect(image).toMatchObject({ width: 32, height: 64 });
  });
});

describe("decodeAudioToPcm", () => {
  it("cuts at maxSeconds", async () => {
    const audio = await decodeAudioToPcm(await file(await makeWav(3, 44100)), { maxSeconds: 1, timeoutMs: 30_000 });
    expect(audio.samples.length).toBe(16000);
    expect(audio.durationSec).toBe(1);
  });
});

describe("sampleVideoFrames", () => {
  it("turns a rotated phone video upright: frames are portrait", async () => {
    const { frames } = await sampleVideoFrames(await file(await makeRotatedMp4()), { rate: 2, maxFrames: 4, maxSide: 1024, timeoutMs: 30_000 });
    expect(frames.length).toBe(2);
    expect(frames[0]).toMatchObject({ width: 240, height: 320 });
    expect(frames[0]!.rgb.length).toBe(240 * 320 * 3);
  });

  it("spreads at most maxFrames over a long clip instead of taking only its start", async () => {
    const { frames, hasAudio } = await sampleVideoFrames(await file(await makeMp4(8, "160x120", 10)), {
      rate: 5,
      maxFrames: 4,
      maxSide: 80,
      timeoutMs: 30_000,
    });
    expect(hasAudio).toBe(true);
    expect(frames.map((frame) => frame.timeSec)).toEqual([0, 2, 4, 6]);
    expect(frames[0]).toMatchObject({ width: 80, height: 60 });
  });
});
