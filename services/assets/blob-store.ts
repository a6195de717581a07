import { createHash, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ErrorCode, TesseraError } from "../core/errors.ts";

export type StoredBlob = { sha256: string; byteSize: number };

/**
 * Content-addressed storage: a blob's name is the sha256 of its bytes, so the
 * same bytes are stored once. Local disk today; an S3-compatible backend
 * implements the same interface.
 */
export interface BlobStore {
  /** Streams bytes in, stopping with PAYLOAD_TOO_LARGE past `maxBytes`; nothing is kept on failure. */
  put(source: Readable | Uint8Array, options?: { maxBytes?: number }): Promise<StoredBlob>;
  get(sha256: string): Readable;
  read(sha256: string): Promise<Buffer>;
  has(sha256: string): Promise<boolean>;
  delete(sha256: string): Promise<void>;
  /** A path on local disk, for tools such as ffmpeg that read files. */
  localPath(sha256: string): Promise<string>;
  /** Every stored blob, with when it was last written (storing the same bytes again writes it again). */
  list(): AsyncIterable<{ sha256: string; writtenAt: Date }>;
  /**
   * Deletes the blob unless it was written at or after `since`, or `inUse()` (asked once the blob is set aside)
   * says something references it: a put of the same bytes racing the delete keeps its blob. True if deleted.
   */
  deleteUnlessWrittenSince(sha256: string, since: Date, inUse: () => Promise<boolean>): Promise<boolean>;
}

const SHA256 = /^[0-9a-f]{64}$/;

export class LocalDiskBlobStore implements BlobStore {
  constructor(private readonly root: string) {}

  private pathOf(sha256: string) {
    if (!SHA256.test(sha256)) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "not a sha256 digest");
    return path.join(this.root, "blobs", sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  async put(source: Readable | Uint8Array, options: { maxBytes?: number } = {}): Promise<StoredBlob> {
    const tmpDir = path.join(this.root, "tmp");
    await fs.mkdir(tmpDir, { recursive: true });
    const tmpPath = path.join(tmpDir, randomUUID());
    const hash = createHash("sha256");
    let byteSize = 0;
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        byteSize += chunk.length;
        if (byteSize > maxBytes) {
          callback(new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `content is larger than the limit of ${maxBytes} bytes`));
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    const input = source instanceof Readable ? source : Readable.from([Buffer.from(source)]);
    try {
      await pipeline(input, meter, createWriteStream(tmpPath));
      const sha256 = hash.digest("hex");
      const finalPath = this.pathOf(sha256);
      await fs.mkdir(path.dirname(finalPath), { recursive: true });
      await fs.rename(tmpPath, finalPath); // atomic: readers never see a half-written blob
      return { sha256, byteSize };
    } catch (error) {
      await fs.rm(tmpPath, { force: true });
      throw error;
    }
  }

  get(sha256: string): Readable {
    return createReadStream(this.pathOf(sha256));
  }

  read(sha256: string): Promise<Buffer> {
    return fs.readFile(this.pathOf(sha256));
  }

  async has(sha256: string): Promise<boolean> {
    return fs.access(this.pathOf(sha256)).then(
      () => true,
      () => false,
    );
  }

  async delete(sha256: string): Promise<void> {
    await fs.rm(this.pathOf(sha256), { force: true });
  }

  async localPath(sha256: string): Promise<string> {
    return this.pathOf(sha256);
  }

  async *list(): AsyncIterable<{ sha256: string; writtenAt: Date }> {
    const root = path.join(this.root, "blobs");
    const entries = await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isFile() || !SHA256.test(entry.name)) continue;
      const stat = await fs.stat(path.join(entry.parentPath, entry.name)).catch(() => null);
      if (stat) yield { sha256: entry.name, writtenAt: stat.mtime };
    }
  }

  /**
   * Moves the blob aside first (a rename is atomic): a put of the same bytes after that writes a new file at its
   * place, and one just before it left a fresh mtime on the file moved aside, which then goes back (same bytes,
   * so putting it back over a newer copy changes nothing).
   */
  async deleteUnlessWrittenSince(sha256: string, since: Date, inUse: () => Promise<boolean>): Promise<boolean> {
    const blobPath = this.pathOf(sha256);
    const aside = path.join(this.root, "tmp", `deleting-${sha256}-${randomUUID()}`);
    await fs.mkdir(path.dirname(aside), { recursive: true });
    try {
      await fs.rename(blobPath, aside);
    } catch {
      return false; // gone already
    }
    const stat = await fs.stat(aside);
    if (stat.mtime >= since || (await inUse().catch(() => true))) {
      await fs.mkdir(path.dirname(blobPath), { recursive: true });
      await fs.rename(aside, blobPath);
      return false;
    }
    await fs.rm(aside, { force: true });
    return true;
  }
}
