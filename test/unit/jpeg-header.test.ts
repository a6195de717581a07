import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { jpegFrameHeader } from "../../services/assets/image-structure.ts";
import { makeJpegOfSize } from "../support/media-fixtures.ts";

/** A JPEG of `width` x `height` in a few of the forms uploads come in. */
async function jpeg(width: number, height: number, form: "baseline" | "progressive" | "gray" | "exif" | "cmyk") {
  const image = sharp({ create: { width, height, channels: 3, background: { r: 200, g: 90, b: 30 } } });
  switch (form) {
    case "baseline":
      return image.jpeg({ quality: 80 }).toBuffer();
    case "progressive":
      return image.jpeg({ progressive: true }).toBuffer();
    case "gray":
      return image.grayscale().jpeg().toBuffer();
    case "exif":
      return image.withMetadata({ orientation: 6, exif: { IFD0: { Copyright: "x".repeat(2000) } } }).jpeg().toBuffer();
    case "cmyk":
      return image.toColourspace("cmyk").jpeg().toBuffer();
  }
}

describe("jpegFrameHeader: a JPEG's size and components read from its frame header (SOF), as sharp reads them", () => {
  for (const form of ["baseline", "progressive", "gray", "exif", "cmyk"] as const) {
    it(`${form}: the same width, height and channels as sharp's metadata`, async () => {
      const bytes = await jpeg(321, 123, form);
      const meta = await sharp(bytes).metadata();
      expect(jpegFrameHeader(bytes)).toEqual({ width: meta.width, height: meta.height, channels: meta.channels });
    });
  }

  it("a noise JPEG of 1 MB: the same as sharp's, from its first 64 KB", async () => {
    const bytes = await makeJpegOfSize(1_000_000, 7);
    const meta = await sharp(bytes).metadata();
    expect(jpegFrameHeader(bytes.subarray(0, 64 * 1024))).toEqual({ width: meta.width, height: meta.height, channels: meta.channels });
  });

  it("gives nothing where the header is not in the bytes or does not say a size: no frame header, a height of 0 (DNL), cut short, not a JPEG", async () => {
    const bytes = await jpeg(40, 30, "baseline");
    const sof = bytes.indexOf(Buffer.from([0xff, 0xc0]));
    expect(sof).toBeGreaterThan(0);
    expect(jpegFrameHeader(bytes.subarray(0, sof + 5))).toBeUndefined();
    const zeroHeight = Buffer.from(bytes);
    zeroHeight.writeUInt16BE(0, sof + 5);
    expect(jpegFrameHeader(zeroHeight)).toBeUndefined();
    expect(jpegFrameHeader(Buffer.from("not a jpeg at all"))).toBeUndefined();
    // Scans reached before any frame header: nothing to read.
    const noFrame = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x02]), Buffer.alloc(10)]);
    expect(jpegFrameHeader(noFrame)).toBeUndefined();
  });
});
