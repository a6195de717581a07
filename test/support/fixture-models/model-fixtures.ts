import type { DecodedImage } from "../../../services/assets/decoded-media.ts";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import sharp from "sharp";

/** Raw RGB8 of an SVG rendered by sharp (librsvg), as the decode stage hands images on. */
export async function renderSvg(svg: string): Promise<DecodedImage> {
  const { data, info } = await sharp(Buffer.from(svg)).flatten({ background: "#ffffff" }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { rgb: data, width: info.width, height: info.height };
}

/** White card with black lines of text. */
export function textCard(lines: string[], width = 520): Promise<DecodedImage> {
  const body = lines
    .map((line, index) => `<text x="24" y="${64 + index * 64}" font-family="DejaVu Sans" font-size="36" fill="black">${line}</text>`)
    .join("");
  return renderSvg(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${40 + lines.length * 64}"><rect width="100%" height="100%" fill="white"/>${body}</svg>`);
}

export function solidImage(width: number, height: number, rgb: [number, number, number]): DecodedImage {
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { rgb: data, width, height };
}

/** Speech by espeak-ng, as 16 kHz mono float PCM, with `padSec` of silence either side. */
export function speak(text: string, padSec = 0.5): Float32Array {
  const wav = execFileSync("espeak-ng", ["--stdout", text]);
  const pcm = execFileSync("ffmpeg", ["-loglevel", "error", "-i", "pipe:0", "-ar", "16000", "-ac", "1", "-f", "f32le", "pipe:1"], { input: wav });
  const speech = new Float32Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
  const pad = Math.round(padSec * 16000);
  const out = new Float32Array(speech.length + 2 * pad);
  out.set(speech, pad);
  return out;
}

export function tone(seconds: number, hz = 440): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * 16000) }, (_, i) => 0.3 * Math.sin((2 * Math.PI * hz * i) / 16000));
}

export function espeakAvailable(): boolean {
  return ["/usr/bin/espeak-ng", "/usr/local/bin/espeak-ng"].some((file) => fs.existsSync(file));
}
