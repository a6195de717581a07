import { createHash, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import fs, { type FileHandle } from "node:fs/promises";
import path from "node:path";
import { finished, Readable } from "node:stream";
import { ErrorCode, TesseraError } from "../core/errors.ts";

export type StoredBlob = {
  sha256: string;
  byteSize: number;
  /**
   * With `keepEnds: n`: the first and the last n bytes (each the whole content when it is shorter), kept from the
   * stream as it went by, so a check of the content's head and tail needs no read of the file back.
   */
  ends?: BlobEnds;
};

export type BlobEnds = { head: Buffer; tail: Buffer };

/**
 * Content-addressed storage: a blob's name is the sha256 of its bytes, so the
 * same bytes are stored once. Local disk today; an S3-compatible backend
 * implements the same interface.
 */
export interface BlobStore {
  /** Streams bytes in, stopping with PAYLOAD_TOO_LARGE past `maxBytes`; nothing is kept on failure. */
  put(source: Readable | Uint8Array, options?: PutOptions): Promise<StoredBlob>;
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

export type PutOptions = { maxBytes?: number; keepEnds?: number };

const SHA256 = /^[0-9a-f]{64}$/;

/** Chunks gathered while one write is on the disk go down in one writev, up to this much; past it the reader waits for the disk. */
const WRITE_BATCH_BYTES = 512 * 1024;

export class LocalDiskBlobStore implements BlobStore {
  constructor(private readonly root: string) {}

  private pathOf(sha256: string) {
    if (!SHA256.test(sha256)) throw new TesseraError(ErrorCode.BAD_USER_INPUT, "not a sha256 digest");
    return path.join(this.root, "blobs", sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  /** Directories known to exist: made once per process, not once per put (a put that finds one gone makes it again). */
  private readonly madeDirs = new Set<string>();

  private async ensureDir(dir: string, again = false) {
    if (again) this.madeDirs.delete(dir);
    if (this.madeDirs.has(dir)) return;
    await fs.mkdir(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  /** Runs `step` on a path in `dir`; where the directory went missing (a cleaned data directory), makes it and retries once. */
  private async inDir<T>(dir: string, step: () => Promise<T>): Promise<T> {
    await this.ensureDir(dir);
    try {
      return await step();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      await this.ensureDir(dir, true);
      return step();
    }
  }

  /**
   * One pass over the bytes: each chunk is counted, hashed and written as it comes (chunks that arrive while a write
   * is on the disk go down together in one writev), into a temporary file renamed to its digest at the end.
   */
  async put(source: Readable | Uint8Array, options: PutOptions = {}): Promise<StoredBlob> {
    const tmpDir = path.join(this.root, "tmp");
    const tmpPath = path.join(tmpDir, randomUUID());
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    let handle: FileHandle | undefined;
    try {
      handle = await this.inDir(tmpDir, () => fs.open(tmpPath, "wx"));
      const { sha256, byteSize, ends } = await writeHashed(handle, source, maxBytes, options.keepEnds ?? 0);
      await handle.close();
      handle = undefined;
      const finalPath = this.pathOf(sha256);
      await this.inDir(path.dirname(finalPath), () => fs.rename(tmpPath, finalPath)); // atomic: readers never see a half-written blob
      return ends ? { sha256, byteSize, ends } : { sha256, byteSize };
    } catch (error) {
      await handle?.close().catch(() => {});
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
    await this.ensureDir(path.dirname(aside), true);
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

function tooLarge(maxBytes: number) {
  return new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `content is larger than the limit of ${maxBytes} bytes`);
}

/** Writes `source` to `handle`, hashing and counting it on the way; stops with PAYLOAD_TOO_LARGE past `maxBytes`. */
async function writeHashed(handle: FileHandle, source: Readable | Uint8Array, maxBytes: number, keepEnds: number) {
  const hash = createHash("sha256");
  if (!(source instanceof Readable)) {
    if (source.length > maxBytes) throw tooLarge(maxBytes);
    hash.update(source);
    await handle.write(source);
    const bytes = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    return { sha256: hash.digest("hex"), byteSize: source.length, ends: endsOf(bytes, bytes, keepEnds) };
  }
  let byteSize = 0;
  const head: Buffer[] = [];
  let headBytes = 0;
  const tail: Buffer[] = [];
  let tailBytes = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let writing: Promise<void> | undefined;
  let writeError: unknown;
  // Writes whatever has gathered, one writev at a time, until nothing is left.
  const drain = async () => {
    try {
      while (batch.length > 0) {
        const chunks = batch;
        batch = [];
        batchBytes = 0;
        await handle.writev(chunks);
      }
    } catch (error) {
      writeError ??= error;
    } finally {
      writing = undefined;
    }
  };
  try {
    for await (const data of chunksOf(source)) {
      const chunk = typeof data === "string" ? Buffer.from(data) : (data as Buffer);
      byteSize += chunk.length;
      if (byteSize > maxBytes) throw tooLarge(maxBytes);
      hash.update(chunk);
      if (headBytes < keepEnds) {
        head.push(chunk);
        headBytes += chunk.length;
      }
      if (keepEnds > 0) {
        tail.push(chunk);
        tailBytes += chunk.length;
        while (tail.length > 1 && tailBytes - tail[0]!.length >= keepEnds) tailBytes -= tail.shift()!.length;
      }
      batch.push(chunk);
      batchBytes += chunk.length;
      writing ??= drain();
      if (batchBytes >= WRITE_BATCH_BYTES) await writing;
      if (writeError) throw writeError;
    }
  } catch (error) {
    source.destroy();
    await writing;
    throw error;
  }
  while (writing) await writing;
  if (batch.length > 0) await drain();
  if (writeError) throw writeError;
  return { sha256: hash.digest("hex"), byteSize, ends: endsOf(Buffer.concat(head), Buffer.concat(tail), keepEnds) };
}

/** Chunks read ahead while the last one is handled; past this many the source is paused. */
const CHUNKS_AHEAD = 8;

/**
 * The source's chunks as it pushed them. A Readable's own async iterator calls `read()`, which hands back every
 * chunk buffered since the last call concatenated into a new Buffer: a copy of much of each upload, made whenever
 * the loop above waits for the disk (bench/README.md, ingest, sixth round). Here the chunks are taken from 'data'
 * events as they are, and the source is paused while CHUNKS_AHEAD wait. It ends as the stream does: with its error,
 * or ERR_STREAM_PREMATURE_CLOSE when it is destroyed before its end (also when that happened before it was read).
 */
function chunksOf(source: Readable): AsyncIterable<Buffer | string> {
  return {
    [Symbol.asyncIterator]() {
      const queue: Array<Buffer | string> = [];
      let ended = false;
      let failure: unknown;
      let wake: (() => void) | undefined;
      const awake = () => {
        const resolve = wake;
        wake = undefined;
        resolve?.();
      };
      const onData = (chunk: Buffer | string) => {
        queue.push(chunk);
        if (queue.length >= CHUNKS_AHEAD) source.pause();
        awake();
      };
      const stopWatching = finished(source, { writable: false }, (error) => {
        if (error) failure ??= error;
        else ended = true;
        awake();
      });
      source.on("data", onData);
      const stop = () => {
        source.off("data", onData);
        stopWatching();
      };
      return {
        async next(): Promise<IteratorResult<Buffer | string>> {
          while (true) {
            if (queue.length > 0) {
              const value = queue.shift()!;
              if (queue.length < CHUNKS_AHEAD && source.isPaused() && !source.destroyed) source.resume();
              return { value, done: false };
            }
            if (failure !== undefined) {
              stop();
              throw failure;
            }
            if (ended) {
              stop();
              return { value: undefined, done: true };
            }
            await new Promise<void>((resolve) => (wake = resolve));
          }
        },
        async return(): Promise<IteratorResult<Buffer | string>> {
          stop();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

/** The first `keep` bytes of `head` and the last `keep` of `tail` (none when `keep` is 0). */
function endsOf(head: Buffer, tail: Buffer, keep: number): BlobEnds | undefined {
  if (keep <= 0) return undefined;
  return { head: head.subarray(0, keep), tail: tail.subarray(Math.max(0, tail.length - keep)) };
}
