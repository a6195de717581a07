import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import zlib from "node:zlib";
import sharp from "sharp";

const run = promisify(execFile);

/** Real media, made on the spot: sharp for still images, ffmpeg's lavfi sources for sound and video. */

/** A noisy picture (noise keeps PNG from compressing it to nothing). */
export function makePng(width = 64, height = 48): Promise<Buffer> {
  return noise(width, height).png().toBuffer();
}

export function makeJpeg(width = 64, height = 48): Promise<Buffer> {
  return noise(width, height).jpeg({ quality: 90 }).toBuffer();
}

function noise(width: number, height: number) {
  return sharp({ create: { width, height, channels: 3, background: "#336699", noise: { type: "gaussian", mean: 128, sigma: 40 } } });
}

/** A JPEG of about `bytes` bytes (for the ingest benchmark). */
export async function makeJpegOfSize(bytes: number, seed = 0): Promise<Buffer> {
  let side = Math.round(Math.sqrt(bytes / 1.2));
  for (let attempt = 0; attempt < 6; attempt++) {
    const image = await sharp({
      create: { width: side, height: side, channels: 3, background: { r: seed % 256, g: 90, b: 160 }, noise: { type: "gaussian", mean: 128, sigma: 40 } },
    })
      .jpeg({ quality: 90 })
      .toBuffer();
    if (Math.abs(image.length - bytes) / bytes < 0.1) return image;
    side = Math.round(side * Math.sqrt(bytes / image.length));
  }
  return noise(side, side).jpeg({ quality: 90 }).toBuffer();
}

/** A sine tone as 16-bit PCM WAV. */
export function makeWav(seconds = 1, sampleRate = 22050): Promise<Buffer> {
  return ffmpeg(["-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`, "-ar", String(sampleRate), "-c:a", "pcm_s16le"], "wav");
}

/** H.264 test pattern with an AAC tone. */
export function makeMp4(seconds = 2, size = "320x240", rate = 25): Promise<Buffer> {
  return ffmpeg(
    [
      "-f", "lavfi", "-i", `testsrc=size=${size}:rate=${rate}:duration=${seconds}`,
      "-f", "lavfi", "-i", `sine=frequency=330:duration=${seconds}`,
      "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", String(rate), "-c:a", "aac", "-shortest",
    ],
    "mp4",
  );
}

/** A short tone in an audio format: "mp3", "flac", "ogg" (Vorbis), "opus", "m4a" (AAC). */
export function makeAudio(format: "mp3" | "flac" | "ogg" | "opus" | "m4a", seconds = 1): Promise<Buffer> {
  const codec = { mp3: "libmp3lame", flac: "flac", ogg: "libvorbis", opus: "libopus", m4a: "aac" }[format];
  return ffmpeg(["-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`, "-ar", "48000", "-c:a", codec], format);
}

/** A short clip in a video container: "webm" (VP8 + Opus) or "mov" (H.264 + AAC). */
export function makeVideo(format: "webm" | "mov", seconds = 1): Promise<Buffer> {
  const codecs = format === "webm" ? ["-c:v", "libvpx", "-c:a", "libopus"] : ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"];
  return ffmpeg(
    ["-f", "lavfi", "-i", `testsrc=size=160x120:rate=10:duration=${seconds}`, "-f", "lavfi", "-i", `sine=duration=${seconds}`, ...codecs, "-shortest"],
    format,
  );
}

/** An MP4 whose stream is stored 320x240 but carries a 90-degree display rotation, as phone videos do. */
export async function makeRotatedMp4(): Promise<Buffer> {
  const plain = await makeMp4(1, "320x240", 10);
  const input = path.join(os.tmpdir(), `tessera-fixture-${randomUUID()}.mp4`);
  await fs.writeFile(input, plain);
  try {
    return await ffmpeg(["-i", input, "-c", "copy", "-metadata:s:v:0", "rotate=90"], "mp4");
  } finally {
    await fs.rm(input, { force: true });
  }
}

async function ffmpeg(args: string[], extension: string): Promise<Buffer> {
  const file = path.join(os.tmpdir(), `tessera-fixture-${randomUUID()}.${extension}`);
  try {
    await run("ffmpeg", ["-hide_banner", "-v", "error", "-y", ...args, file], { timeout: 60_000 });
    return await fs.readFile(file);
  } finally {
    await fs.rm(file, { force: true });
  }
}

/** A real PDF with a text layer: one page per entry, each line drawn in Helvetica (ASCII text). */
export function makePdf(pages: string[][]): Buffer {
  const escape = (text: string) => text.replace(/[\\()]/g, (char) => `\\${char}`);
  const objects: string[] = [];
  const fontId = 3 + pages.length * 2;
  const pageIds = pages.map((_, index) => 3 + index * 2);
  objects[1] = "<< /Type /Catalog /Pages 2 0 R >>";
  objects[2] = `<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(" ")}] /Count ${pages.length} >>`;
  pages.forEach((lines, index) => {
    const pageId = pageIds[index]!;
    const stream = `BT /F1 14 Tf 18 TL 72 720 Td ${lines.map((line) => `(${escape(line)}) Tj T*`).join(" ")} ET`;
    objects[pageId] = `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 ${fontId} 0 R >> >> /Contents ${pageId + 1} 0 R >>`;
    objects[pageId + 1] = `<< /Length ${Buffer.byteLength(stream)} >>\nstream\n${stream}\nendstream`;
  });
  objects[fontId] = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>";
  let body = "%PDF-1.4\n";
  const offsets: number[] = [];
  for (let id = 1; id < objects.length; id++) {
    offsets[id] = Buffer.byteLength(body);
    body += `${id} 0 obj\n${objects[id]}\nendobj\n`;
  }
  const xref = Buffer.byteLength(body);
  body += `xref\n0 ${objects.length}\n0000000000 65535 f \n`;
  for (let id = 1; id < objects.length; id++) body += `${String(offsets[id]).padStart(10, "0")} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, "latin1");
}

/** The first half of a real PNG: the header is fine, the pixel data stops short. */
export async function truncatedPng(): Promise<Buffer> {
  const png = await makePng(256, 256);
  return png.subarray(0, Math.floor(png.length / 2));
}

/** A PNG whose chunks are all whole and whose CRCs are right, but whose IDAT holds bytes that do not inflate. */
export async function pngWithCorruptPixels(): Promise<Buffer> {
  const png = Buffer.from(await makePng(64, 48));
  const idat = png.indexOf("IDAT", 8, "latin1") - 4;
  const length = png.readUInt32BE(idat);
  for (let index = 0; index < length; index++) png[idat + 8 + index] = (index * 97 + 13) & 0xff;
  png.writeUInt32BE(zlib.crc32(png.subarray(idat + 4, idat + 8 + length)), idat + 8 + length);
  return png;
}

/** A small, valid-looking PNG whose header declares `width` x `height` pixels (a decompression bomb). */
export async function pngDeclaring(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await makePng(8, 8));
  // Signature (8 bytes), then the IHDR chunk: length (4), "IHDR" (4), width (4), height (4), ...; CRC over type + data.
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(zlib.crc32(png.subarray(12, 29)), 29);
  return png;
}

/** A real WAV whose header claims zero channels. */
export async function wavWithLyingHeader(): Promise<Buffer> {
  const wav = Buffer.from(await makeWav(1));
  const fmt = wav.indexOf("fmt ");
  wav.writeUInt16LE(0, fmt + 10); // fmt chunk: id (4), size (4), format (2), channels (2)
  return wav;
}

/** Bytes that are no format at all. */
export function randomBytes(length = 64 * 1024): Buffer {
  const bytes = Buffer.alloc(length);
  for (let index = 0; index < length; index++) bytes[index] = (index * 2654435761) >>> 13 & 0xff;
  return bytes;
}
