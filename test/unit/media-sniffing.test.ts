import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { inspectMedia } from "../../services/assets/media-inspector.ts";
import { looksLikeUtf8Text, sniffBytes } from "../../services/assets/media-sniffer.ts";
import { makeAudio, makeJpeg, makeMp4, makePdf, makePng, makeVideo, makeWav, randomBytes } from "../support/media-fixtures.ts";

const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-sniff-"));
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

const limits = { maxImagePixels: 10_000_000, toolTimeoutMs: 30_000 };

async function inspect(bytes: Uint8Array, claimed: { filename?: string; mimeType?: string } = {}) {
  const file = path.join(dir, randomUUID());
  await fs.writeFile(file, bytes);
  return inspectMedia(file, claimed, limits);
}

const image = () => sharp({ create: { width: 12, height: 10, channels: 3, background: "#8040c0" } });

describe("type from the bytes, whatever the name says", () => {
  it.each([
    ["PNG", () => makePng(12, 10), "image/png"],
    ["JPEG", () => makeJpeg(12, 10), "image/jpeg"],
    ["WebP", () => image().webp().toBuffer(), "image/webp"],
    ["GIF", () => image().gif().toBuffer(), "image/gif"],
  ])("%s is an IMAGE with its size", async (_name, make, mimeType) => {
    // Named and typed as something else on purpose: neither is trusted.
    const inspected = await inspect(await make(), { filename: "misleading.bmp", mimeType: "image/bmp" });
    expect(inspected).toMatchObject({ modality: "IMAGE", mimeType, media: { width: 12, height: 10 } });
  });

  it.each([
    ["WAV", () => makeWav(1, 16000), "audio/wav", "pcm_s16le"],
    ["MP3", () => makeAudio("mp3"), "audio/mpeg", "mp3"],
    ["FLAC", () => makeAudio("flac"), "audio/flac", "flac"],
    ["OGG Vorbis", () => makeAudio("ogg"), "audio/ogg", "vorbis"],
    ["OGG Opus", () => makeAudio("opus"), "audio/ogg; codecs=opus", "opus"],
    ["M4A", () => makeAudio("m4a"), "audio/x-m4a", "aac"],
  ])("%s is AUDIO with duration, sample rate and codec", async (_name, make, mimeType, codec) => {
    const inspected = await inspect(await make(), { filename: "sound.bin" });
    expect(inspected).toMatchObject({ modality: "AUDIO", mimeType, media: { codec, channels: 1 } });
    expect(inspected.media.durationSec).toBeGreaterThan(0.9);
    expect(inspected.media.durationSec).toBeLessThan(1.2);
    expect(inspected.media.sampleRate).toBeGreaterThan(0);
  });

  it.each([
    ["MP4", () => makeMp4(1, "160x120", 10), "video/mp4", "h264"],
    ["WebM", () => makeVideo("webm"), "video/webm", "vp8"],
    ["MOV", () => makeVideo("mov"), "video/quicktime", "h264"],
  ])("%s is VIDEO with size, frame rate and codecs", async (_name, make, mimeType, codec) => {
    const inspected = await inspect(await make(), { filename: "clip.txt", mimeType: "text/plain" });
    expect(inspected).toMatchObject({ modality: "VIDEO", mimeType, media: { width: 160, height: 120, frameRate: 10, codec } });
    expect(inspected.media.audioCodec).toBeTruthy();
  });

  it("an MP4 with no picture is AUDIO", async () => {
    const inspected = await inspect(await makeAudio("m4a"), { filename: "song.mp4", mimeType: "video/mp4" });
    expect(inspected.modality).toBe("AUDIO");
  });

  it("UTF-8 text is text/plain, and Markdown is recognised by its signs or its name", async () => {
    expect(await sniffBytes(Buffer.from("plain words, ünïcödé ✓\n"))).toEqual({ modality: "TEXT", mimeType: "text/plain" });
    expect(await sniffBytes(Buffer.from("# Title\n\nSome *text*.\n"))).toEqual({ modality: "TEXT", mimeType: "text/markdown" });
    expect(await sniffBytes(Buffer.from("see [the docs](https://example.com)\n"))).toMatchObject({ mimeType: "text/markdown" });
    expect(await sniffBytes(Buffer.from("no signs\n"), { filename: "notes.md" })).toMatchObject({ mimeType: "text/markdown" });
  });

  it("a PDF with a text layer is TEXT (application/pdf) with its page count", async () => {
    const pdf = makePdf([["First page"], ["Second page"]]);
    const inspected = await inspect(pdf, { filename: "report.bin", mimeType: "application/octet-stream" });
    expect(inspected).toMatchObject({ modality: "TEXT", mimeType: "application/pdf", media: { pages: 2 } });
  });

  it("a sample that cuts a multi-byte character at its end is still text", () => {
    const bytes = Buffer.from("日本語のテキスト");
    expect(looksLikeUtf8Text(bytes.subarray(0, bytes.length - 1))).toBe(true);
    expect(looksLikeUtf8Text(Buffer.from([0x66, 0x6f, 0x00, 0x6f]))).toBe(false); // NUL: binary
    expect(looksLikeUtf8Text(Buffer.from([0xc3, 0x28]))).toBe(false); // invalid sequence
  });
});

describe("refusals", () => {
  const codeOf = (promise: Promise<unknown>) => promise.then(() => "accepted", (error) => error.code);

  it("text that claims to be an image, a sound or a video is UNSUPPORTED_MEDIA_TYPE", async () => {
    for (const claimed of [{ filename: "a.jpg" }, { mimeType: "audio/mpeg" }, { filename: "clip.MOV" }]) {
      expect(await codeOf(sniffBytes(Buffer.from("hello"), claimed))).toBe("UNSUPPORTED_MEDIA_TYPE");
    }
  });

  it("bytes of no known format are UNSUPPORTED_MEDIA_TYPE", async () => {
    expect(await codeOf(sniffBytes(randomBytes(4096), { filename: "x.mp4" }))).toBe("UNSUPPORTED_MEDIA_TYPE");
  });

  it("a known but unsupported format (ZIP) is UNSUPPORTED_MEDIA_TYPE and says what it is", async () => {
    const zip = Buffer.from([0x50, 0x4b, 0x03, 0x04, ...Buffer.alloc(60)]);
    await expect(sniffBytes(zip)).rejects.toMatchObject({ code: "UNSUPPORTED_MEDIA_TYPE", details: { detected: "application/zip" } });
  });

  it("a PDF that does not parse is CORRUPT_MEDIA; one without a text layer is UNSUPPORTED_MEDIA_TYPE", async () => {
    await expect(inspect(Buffer.from("%PDF-1.4\nnot really a PDF\n"))).rejects.toMatchObject({ code: "CORRUPT_MEDIA" });
    await expect(inspect(makePdf([[]]))).rejects.toMatchObject({ code: "UNSUPPORTED_MEDIA_TYPE" });
  });

  it("empty content is BAD_USER_INPUT", async () => {
    expect(await codeOf(sniffBytes(new Uint8Array(0)))).toBe("BAD_USER_INPUT");
  });

  it("an image over the pixel limit is refused before decoding", async () => {
    const big = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: "#000" } }).png().toBuffer();
    await expect(inspect(big)).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
  });

  it("a PNG header on MP3 bytes is CORRUPT_MEDIA", async () => {
    const png = await makePng(8, 8);
    const forged = Buffer.concat([png.subarray(0, 33), await makeAudio("mp3")]);
    await expect(inspect(forged)).rejects.toMatchObject({ code: "CORRUPT_MEDIA" });
  });
});
