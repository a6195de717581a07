import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it, vi } from "vitest";
import { LocalDiskBlobStore } from "../../services/assets/blob-store.ts";

const root = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-blobs-"));
afterAll(() => fs.rm(root, { recursive: true, force: true }));

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
/** The bytes as a stream of uneven chunks, as a socket hands them over. */
const chunked = (bytes: Buffer, sizes = [1, 4096, 65536, 7, 100_000]) => {
  const chunks: Buffer[] = [];
  for (let at = 0, index = 0; at < bytes.length; index++) {
    const size = sizes[index % sizes.length]!;
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return Readable.from(chunks);
};
const tmpFiles = async (store: string) => (await fs.readdir(path.join(store, "tmp")).catch(() => [])).length;

describe("LocalDiskBlobStore.put", () => {
  it("stores a stream whole under its digest, and keeps its first and last bytes when asked", async () => {
    const store = new LocalDiskBlobStore(path.join(root, "a"));
    const bytes = randomBytes(1_500_000);
    const blob = await store.put(chunked(bytes), { keepEnds: 65536 });
    expect(blob).toMatchObject({ sha256: sha256(bytes), byteSize: bytes.length });
    expect(blob.ends!.head.equals(bytes.subarray(0, 65536))).toBe(true);
    expect(blob.ends!.tail.equals(bytes.subarray(bytes.length - 65536))).toBe(true);
    expect((await store.read(blob.sha256)).equals(bytes)).toBe(true);
  });

  it("a short content is its own head and tail; bytes given at once are stored the same", async () => {
    const store = new LocalDiskBlobStore(path.join(root, "b"));
    const bytes = randomBytes(5000);
    const streamed = await store.put(chunked(bytes, [3, 1000]), { keepEnds: 65536 });
    const given = await store.put(new Uint8Array(bytes), { keepEnds: 65536 });
    expect(given).toEqual(streamed);
    expect(streamed.ends!.head.equals(bytes) && streamed.ends!.tail.equals(bytes)).toBe(true);
    expect(await store.put(bytes)).toEqual({ sha256: sha256(bytes), byteSize: 5000 });
  });

  it("stops past maxBytes with PAYLOAD_TOO_LARGE, leaving no file, from a stream or from bytes", async () => {
    const dir = path.join(root, "c");
    const store = new LocalDiskBlobStore(dir);
    const bytes = randomBytes(300_000);
    const source = chunked(bytes);
    await expect(store.put(source, { maxBytes: 200_000 })).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
    expect(source.destroyed).toBe(true);
    await expect(store.put(bytes, { maxBytes: 200_000 })).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE" });
    expect(await tmpFiles(dir)).toBe(0);
    expect(await store.has(sha256(bytes))).toBe(false);
  });

  it("a stream that breaks off leaves no file", async () => {
    const dir = path.join(root, "d");
    const store = new LocalDiskBlobStore(dir);
    const source = new Readable({ read() {} });
    source.push(randomBytes(100_000));
    setTimeout(() => source.destroy(new Error("connection reset")), 20);
    await expect(store.put(source)).rejects.toThrow("connection reset");
    expect(await tmpFiles(dir)).toBe(0);
  });

  it("writes the chunks a byte stream pushed as they are, none copied into a larger one while a write waits", async () => {
    const dir = path.join(root, "f");
    const store = new LocalDiskBlobStore(dir);
    const chunks = Array.from({ length: 24 }, () => randomBytes(65536));
    // A socket's body: bytes (not objects), pushed faster than the disk takes them, so chunks queue in the stream.
    const source = new Readable({ read() {} });
    const probe = await fs.open(path.join(root, "probe"), "w");
    const handleProto = Object.getPrototypeOf(probe) as { writev(buffers: Buffer[]): Promise<unknown> };
    await probe.close();
    const original = handleProto.writev;
    const written: Buffer[] = [];
    // Each write takes a while, as a busy disk's does, and records what it was given.
    const writev = vi.spyOn(handleProto, "writev").mockImplementation(async function (this: unknown, buffers: Buffer[]) {
      written.push(...buffers);
      await new Promise((resolve) => setTimeout(resolve, 5));
      return original.call(this, buffers);
    });
    try {
      const put = store.put(source);
      for (const chunk of chunks) source.push(chunk);
      source.push(null);
      const blob = await put;
      expect(blob.sha256).toBe(sha256(Buffer.concat(chunks)));
    } finally {
      writev.mockRestore();
    }
    expect(written.length).toBe(chunks.length);
    expect(written.every((buffer, index) => buffer === chunks[index])).toBe(true);
  });

  it("a stream destroyed before it is read is refused, with its error or as cut off, and leaves no file", async () => {
    const dir = path.join(root, "g");
    const store = new LocalDiskBlobStore(dir);
    const failed = new Readable({ read() {} });
    failed.on("error", () => {});
    failed.push(randomBytes(1000));
    failed.destroy(new Error("limit reached"));
    await new Promise((resolve) => setImmediate(resolve));
    await expect(store.put(failed)).rejects.toThrow("limit reached");
    const dropped = new Readable({ read() {} });
    dropped.push(randomBytes(1000));
    dropped.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    await expect(store.put(dropped)).rejects.toMatchObject({ code: "ERR_STREAM_PREMATURE_CLOSE" });
    expect(await tmpFiles(dir)).toBe(0);
  });

  it("directories made once are made again when the data directory was emptied under it", async () => {
    const dir = path.join(root, "e");
    const store = new LocalDiskBlobStore(dir);
    const first = randomBytes(1000);
    await store.put(first);
    await fs.rm(dir, { recursive: true, force: true });
    const second = await store.put(chunked(first));
    expect((await store.read(second.sha256)).equals(first)).toBe(true);
  });
});
