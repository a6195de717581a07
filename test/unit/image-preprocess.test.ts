import type { DecodedImage } from "../../services/assets/decoded-media.ts";
import { describe, expect, it } from "vitest";
import { imagesToTensorData, resizeForModel, type ImageTensorSpec } from "../../services/models/image-preprocess.ts";

const spec: ImageTensorSpec = { width: 32, height: 24, resize: "cover-crop", scale: 1 / 255, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };

/** A picture with detail in both directions, so a wrong crop or resize shows in the numbers. */
function gradient(width: number, height: number): DecodedImage {
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = (y * width + x) * 3;
      rgb[at] = (x * 255) / (width - 1);
      rgb[at + 1] = (y * 255) / (height - 1);
      rgb[at + 2] = ((x + y) * 7) & 255;
    }
  }
  return { rgb, width, height };
}

describe("image preprocessing", () => {
  it("gives the same tensor for an image resized ahead (prepareImage) as for the image resized in the batch", async () => {
    const images = [gradient(100, 60), gradient(50, 90), gradient(32, 24)];
    const inBatch = await imagesToTensorData(images, spec);
    const prepared = await Promise.all(images.map((image) => resizeForModel(image, spec)));
    expect(prepared.map(({ width, height }) => [width, height])).toEqual([
      [32, 24],
      [32, 24],
      [32, 24],
    ]);
    expect(Array.from(await imagesToTensorData(prepared, spec))).toEqual(Array.from(inBatch));
  });

  it("normalises each channel as the manifest says: (pixel * scale - mean) / std, planar", async () => {
    const image = gradient(32, 24);
    const data = await imagesToTensorData([image], spec);
    const plane = 32 * 24;
    const pixel = 5 * 32 + 7; // x 7, y 5
    for (let channel = 0; channel < 3; channel++) {
      const expected = (image.rgb[pixel * 3 + channel]! * spec.scale - spec.mean[channel]!) / spec.std[channel]!;
      expect(data[channel * plane + pixel]).toBeCloseTo(expected, 5);
    }
  });

  it("refuses an image whose bytes do not fill width x height x 3, instead of reading past them", async () => {
    const short = { rgb: Buffer.alloc(10), width: 32, height: 24 };
    await expect(resizeForModel(short, spec)).rejects.toThrow("the image holds 10 bytes, not 32 x 24 x 3");
    await expect(imagesToTensorData([short], spec)).rejects.toThrow("not 32 x 24 x 3");
  });
});
