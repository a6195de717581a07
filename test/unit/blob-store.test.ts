import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
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
