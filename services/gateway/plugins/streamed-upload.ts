import { PassThrough, Readable } from "node:stream";
import { ErrorCode, TesseraError } from "../../core/errors.ts";

/**
 * One file of a multipart request, handed to resolvers while it is still
 * arriving: reading `createReadStream()` pulls the bytes off the socket, so
 * nothing is buffered whole in memory and a size limit stops it mid-flight.
 * It stands in for a `File` (the `Upload` scalar's type); its size is unknown.
 */
export class StreamedUpload {
  readonly size = Number.NaN;
  readonly lastModified = Date.now();
  name = "";
  type = "application/octet-stream";
  private readonly sink = new PassThrough();
  private attached?: Readable;
  private consumed = false;

  constructor(readonly field: string) {
    // A failure (a limit, a broken body) can come before the resolver reads: the reader hears it from the stream
    // then (it stays errored), and until then it must not be an 'error' event nobody listens to.
    this.sink.on("error", () => {});
  }

  /** The bytes, once. A second reader would see nothing, so it is refused. */
  createReadStream(): Readable {
    if (this.consumed) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `the file in "${this.field}" was already read`);
    this.consumed = true;
    return this.sink;
  }

  /** For code that expects a web `File`. */
  stream(): ReadableStream<Uint8Array> {
    return Readable.toWeb(this.createReadStream()) as ReadableStream<Uint8Array>;
  }

  /** The whole file in memory, for small files only (callers that need bytes at once, with their own limit). */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.createReadStream()) chunks.push(chunk as Buffer);
    const whole = Buffer.concat(chunks);
    return whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    return Buffer.from(await this.arrayBuffer()).toString("utf8");
  }

  /** Whether the parser has reached this file's part yet. */
  get arrived() {
    return this.attached !== undefined;
  }

  /** The multipart parser reached this file's part. */
  attach(part: Readable, filename: string | undefined, mimeType: string | undefined) {
    this.name = filename ?? "";
    if (mimeType) this.type = mimeType;
    this.attached = part;
    part.on("limit", () => this.fail(new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, "the file is larger than the upload limit")));
    part.on("error", (error) =>
      this.fail(error instanceof TesseraError ? error : new TesseraError(ErrorCode.BAD_USER_INPUT, `the upload broke off: ${error.message}`)),
    );
    // If the reader gives up (a limit, a bad type), drain the rest of the part so the request can finish.
    this.sink.on("close", () => {
      part.unpipe(this.sink);
      part.resume();
    });
    part.pipe(this.sink);
  }

  fail(error: Error) {
    if (!this.sink.destroyed) this.sink.destroy(error);
  }

  /** After the response: whatever nobody read is drained and dropped. */
  discard() {
    this.attached?.unpipe(this.sink);
    this.attached?.resume();
    this.sink.destroy();
  }
}
