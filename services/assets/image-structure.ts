import { open, type FileHandle } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { ErrorCode, TesseraError } from "../core/errors.ts";

/**
 * The upload's cheap check of an image: its container is whole, judged from
 * its structure alone, without decoding a pixel (about a tenth of the decode's
 * CPU for a 1 MB JPEG). JPEG: the markers up to the first scan, then an end
 * marker (EOI) after it; PNG: every chunk present, its length inside the file,
 * the CRCs of the critical chunks (IHDR, PLTE, IDAT, IEND) right, up to IEND;
 * GIF: its blocks up to the trailer; WebP: the RIFF chunks inside the file.
 * A truncated file fails here with CORRUPT_MEDIA; corrupt pixel data inside a
 * whole container is found by the ingest job's decode.
 */
export async function checkImageStructure(filePath: string, mimeType: string, known?: KnownBytes): Promise<void> {
  const walk = WALKS[mimeType];
  if (!walk) return;
  const file = new FileWindow(filePath, known);
  try {
    const problem = await walk(file, await file.size());
    if (problem) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, `the image is ${problem}`, { reason: problem });
  } finally {
    await file.close();
  }
}

/**
 * What the caller already holds of the file: its size and its first and last bytes (kept as it was stored). Reads
 * that fall inside them touch no disk; a JPEG's walk usually needs nothing else, and the file is opened only when
 * a walk reads between them (a PNG's CRCs, a long marker segment).
 */
export type KnownBytes = { size: number; head: Buffer; tail: Buffer };

/** Each walk answers what is wrong ("truncated: ...", "corrupt: ..."), or nothing. */
type Walk = (file: FileWindow, size: number) => Promise<string | undefined>;

const WALKS: Record<string, Walk> = {
  "image/jpeg": walkJpeg,
  "image/png": walkPng,
  "image/gif": walkGif,
  "image/webp": walkWebp,
};

const WINDOW_BYTES = 64 * 1024;

/** A file read a window at a time: walks touch a few bytes here and there, and the data between is skipped. */
class FileWindow {
  private buffer = Buffer.alloc(0);
  private start = 0;
  private filled = 0;
  private handle?: FileHandle;
  private fileSize?: number;

  constructor(
    private readonly filePath: string,
    private readonly known?: KnownBytes,
  ) {}

  async size(): Promise<number> {
    if (this.known) return this.known.size;
    return (this.fileSize ??= (await (await this.open()).stat()).size);
  }

  private async open(): Promise<FileHandle> {
    return (this.handle ??= await open(this.filePath, "r"));
  }

  async close() {
    await this.handle?.close();
  }

  /** `length` bytes from `position`, or null where the file ends first. Valid until the next call. */
  async bytes(position: number, length: number): Promise<Buffer | null> {
    const size = await this.size();
    if (position < 0 || position + length > size) return null;
    const known = this.known;
    if (known) {
      if (position + length <= known.head.length) return known.head.subarray(position, position + length);
      const tailStart = size - known.tail.length;
      if (position >= tailStart) return known.tail.subarray(position - tailStart, position - tailStart + length);
    }
    if (position < this.start || position + length > this.start + this.filled) {
      const want = Math.min(Math.max(length, WINDOW_BYTES), size - position);
      if (this.buffer.length < want) this.buffer = Buffer.allocUnsafe(Math.max(want, WINDOW_BYTES));
      const { bytesRead } = await (await this.open()).read(this.buffer, 0, want, position);
      this.start = position;
      this.filled = bytesRead;
      if (bytesRead < length) return null; // the file shrank under us
    }
    return this.buffer.subarray(position - this.start, position - this.start + length);
  }

  /** The CRC-32 of `length` bytes from `position`, read in windows. */
  async crc(position: number, length: number, initial: number): Promise<number | null> {
    let value = initial;
    for (let at = position; at < position + length; at += WINDOW_BYTES) {
      const piece = await this.bytes(at, Math.min(WINDOW_BYTES, position + length - at));
      if (!piece) return null;
      value = crc32(piece, value);
    }
    return value;
  }
}

/**
 * Segments from SOI to the first SOS (their lengths skip APP data such as an EXIF thumbnail, which holds a JPEG of
 * its own), then the last FF D9 of the file, which must lie after that scan's header. Entropy-coded data never holds
 * FF D9 (a data byte FF is followed by 00), so a file cut inside its scans has none there. Bytes after EOI (a
 * motion photo's video) are allowed, as decoders allow them.
 */
async function walkJpeg(file: FileWindow, size: number): Promise<string | undefined> {
  const soi = await file.bytes(0, 2);
  if (!soi || soi[0] !== 0xff || soi[1] !== 0xd8) return "corrupt: no JPEG start marker";
  let position = 2;
  let scanStart = -1;
  while (scanStart < 0) {
    const head = await file.bytes(position, 2);
    if (!head) return "truncated: it ends before its first scan";
    if (head[0] !== 0xff) return `corrupt: no marker at byte ${position}`;
    const marker = head[1]!;
    if (marker === 0xff) {
      position += 1; // fill byte
      continue;
    }
    if (marker === 0xd9) return "corrupt: it ends (EOI) before any scan";
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      position += 2; // markers without a length
      continue;
    }
    const lengthBytes = await file.bytes(position + 2, 2);
    if (!lengthBytes) return "truncated: it ends inside a marker segment";
    const length = lengthBytes.readUInt16BE(0);
    if (length < 2) return `corrupt: a marker segment of length ${length}`;
    if (position + 2 + length > size) return "truncated: it ends inside a marker segment";
    if (marker === 0xda) scanStart = position + 2 + length;
    position += 2 + length;
  }
  // Backwards from the end, a window at a time (one read for the usual file, whose last two bytes are EOI).
  const eoi = Buffer.from([0xff, 0xd9]);
  for (let end = size; end - scanStart >= 2; ) {
    const from = Math.max(scanStart, end - WINDOW_BYTES);
    const window = await file.bytes(from, end - from);
    if (!window) return "truncated: it could not be read to its end";
    if (window.lastIndexOf(eoi) >= 0) return undefined;
    end = from + 1; // FF D9 may straddle two windows
  }
  return "truncated: it has no end marker (EOI) after its image data";
}

/** SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC): the markers of a frame header. */
const isFrameHeader = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

/**
 * A JPEG's size and number of components from its frame header (SOF), read from `bytes` (its first bytes: an
 * upload's kept head), as libjpeg reads them for sharp's `metadata()` (width, height, channels), without a thread
 * pool hop or a native call. Undefined where that cannot be told from these bytes alone: not a JPEG, the segments
 * run past them or reach a scan first, a height of 0 (given later by a DNL marker) or a width of 0, an unusual
 * component count; the caller then asks sharp, as before.
 */
export function jpegFrameHeader(bytes: Buffer): { width: number; height: number; channels: number } | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let position = 2;
  while (position + 4 <= bytes.length) {
    if (bytes[position] !== 0xff) return undefined;
    const marker = bytes[position + 1]!;
    if (marker === 0xff) {
      position += 1;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      position += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined;
    const length = bytes.readUInt16BE(position + 2);
    if (length < 2) return undefined;
    if (isFrameHeader(marker)) {
      if (length < 8 || position + 2 + 8 > bytes.length) return undefined;
      const height = bytes.readUInt16BE(position + 5);
      const width = bytes.readUInt16BE(position + 7);
      const channels = bytes[position + 9]!;
      if (width === 0 || height === 0 || ![1, 3, 4].includes(channels)) return undefined;
      return { width, height, channels };
    }
    position += 2 + length;
  }
  return undefined;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Chunks from the signature to IEND; the critical chunks' CRCs are checked, as decoders check them. */
async function walkPng(file: FileWindow, size: number): Promise<string | undefined> {
  const signature = await file.bytes(0, 8);
  if (!signature?.equals(PNG_SIGNATURE)) return "corrupt: no PNG signature";
  let position = 8;
  let imageData = false;
  for (let index = 0; ; index++) {
    const head = await file.bytes(position, 8);
    if (!head) return "truncated: it ends before its IEND chunk";
    const length = head.readUInt32BE(0);
    const type = head.toString("latin1", 4, 8);
    if (!/^[A-Za-z]{4}$/.test(type) || length > 0x7fffffff) return `corrupt: no chunk at byte ${position}`;
    if (index === 0 && type !== "IHDR") return "corrupt: its first chunk is not IHDR";
    if (position + 12 + length > size) return `truncated: it ends inside its ${type} chunk`;
    // Ancillary chunks (lower-case first letter) with a bad CRC are skipped by decoders; critical ones fail them.
    if (type.charCodeAt(0) < 0x61) {
      const typeCrc = crc32(head.subarray(4, 8));
      const computed = await file.crc(position + 8, length, typeCrc);
      const stored = await file.bytes(position + 8 + length, 4);
      if (computed === null || !stored) return `truncated: it ends inside its ${type} chunk`;
      if (stored.readUInt32BE(0) !== computed) return `corrupt: its ${type} chunk at byte ${position} fails its CRC`;
    }
    if (type === "IDAT") imageData = true;
    if (type === "IEND") return imageData ? undefined : "corrupt: it has no image data (IDAT)";
    position += 12 + length;
  }
}

/**
 * Header, colour table, then extension and image blocks (each a chain of sub-blocks) to the trailer. A file that
 * ends between blocks after a whole image, or has bytes of no block there, is taken: decoders show it.
 */
async function walkGif(file: FileWindow, size: number): Promise<string | undefined> {
  const header = await file.bytes(0, 13);
  if (!header || !/^GIF8[79]a$/.test(header.toString("latin1", 0, 6))) return "truncated: it ends inside its header";
  const tableBytes = (flags: number) => (flags & 0x80 ? 3 * 2 ** ((flags & 0x07) + 1) : 0);
  let position = 13 + tableBytes(header[10]!);
  let images = 0;
  const skipSubBlocks = async (): Promise<boolean> => {
    for (;;) {
      const blockSize = await file.bytes(position, 1);
      if (!blockSize) return false;
      position += 1 + blockSize[0]!;
      if (blockSize[0] === 0) return position <= size;
    }
  };
  for (;;) {
    const block = await file.bytes(position, 1);
    if (!block) return images > 0 && position === size ? undefined : "truncated: it ends before its trailer";
    if (block[0] === 0x3b) return images > 0 ? undefined : "corrupt: it has no image";
    if (block[0] === 0x21) {
      position += 2; // introducer and label
      if (!(await skipSubBlocks())) return "truncated: it ends inside an extension block";
    } else if (block[0] === 0x2c) {
      const descriptor = await file.bytes(position, 10);
      if (!descriptor) return "truncated: it ends inside an image descriptor";
      position += 10 + tableBytes(descriptor[9]!) + 1; // descriptor, local colour table, LZW minimum code size
      if (!(await skipSubBlocks())) return "truncated: it ends inside its image data";
      images++;
    } else {
      return images > 0 ? undefined : `corrupt: no block at byte ${position}`;
    }
  }
}

/** RIFF's size inside the file, and each chunk (padded to an even length) inside RIFF's size. */
async function walkWebp(file: FileWindow, size: number): Promise<string | undefined> {
  const header = await file.bytes(0, 12);
  if (!header || header.toString("latin1", 0, 4) !== "RIFF" || header.toString("latin1", 8, 12) !== "WEBP") return "corrupt: no RIFF WEBP header";
  const end = 8 + header.readUInt32LE(4);
  if (end > size) return "truncated: it is shorter than its RIFF header says";
  let position = 12;
  let chunks = 0;
  while (position + 8 <= end) {
    const head = await file.bytes(position, 8);
    if (!head) return "truncated: it ends inside a chunk";
    const length = head.readUInt32LE(4);
    position += 8 + length + (length % 2);
    if (position > end + (length % 2)) return `truncated: it ends inside its ${head.toString("latin1", 0, 4).trim()} chunk`;
    chunks++;
  }
  return chunks > 0 ? undefined : "corrupt: it holds no chunk";
}
