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
}
