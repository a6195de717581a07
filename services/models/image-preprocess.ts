import sharp from "sharp";
import type { DecodedImage } from "../assets/decoded-media.ts";

export type ImageTensorSpec = {
  width: number;
  height: number;
  resize: "cover-crop" | "stretch";
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
};

/** The size a model's image tower takes, and how an image is brought to it. */
export type ImageInputSize = Pick<ImageTensorSpec, "width" | "height" | "resize">;

/**
 * One image resized (shortest edge then centre crop, or stretch) to the
 * model's input size with sharp. Done per image as it arrives, before batching
 * (so the resizing of a batch overlaps the batch before it), and by a worker
 * that calls the model on another worker, before sending.
 */
export async function resizeForModel(image: DecodedImage, spec: ImageInputSize): Promise<DecodedImage> {
  if (image.rgb.length !== image.width * image.height * 3) {
    throw new Error(`the image holds ${image.rgb.length} bytes, not ${image.width} x ${image.height} x 3`);
  }
  if (image.width === spec.width && image.height === spec.height) return image;
  const rgb = await sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(spec.width, spec.height, { fit: spec.resize === "stretch" ? "fill" : "cover", position: "centre", kernel: "cubic" })
    .removeAlpha()
    .raw()
    .toBuffer();
  return { rgb, width: spec.width, height: spec.height };
}

/**
 * Raw RGB8 images -> one float32 NCHW batch, as the manifest says: resized
 * (resizeForModel; images already at the input size are taken as they are),
 * then (pixel * scale - mean) / std per channel (a 256-entry table per
 * channel: the same arithmetic, once per value instead of once per pixel).
 * `into` makes a reused array of the batch's size the output (every element is written).
 */
export async function imagesToTensorData(images: DecodedImage[], spec: ImageTensorSpec, into?: (length: number) => Float32Array): Promise<Float32Array> {
  const plane = spec.width * spec.height;
  const out = into ? into(images.length * 3 * plane) : new Float32Array(images.length * 3 * plane);
  const tables = [0, 1, 2].map((c) => Float32Array.from({ length: 256 }, (_, value) => (value * spec.scale - spec.mean[c]!) / spec.std[c]!));
  const [red, green, blue] = tables as [Float32Array, Float32Array, Float32Array];
  await Promise.all(
    images.map(async (image, index) => {
      const pixels = (await resizeForModel(image, spec)).rgb;
      const base = index * 3 * plane;
      for (let p = 0, q = 0; p < plane; p++, q += 3) {
        out[base + p] = red[pixels[q]!]!;
        out[base + plane + p] = green[pixels[q + 1]!]!;
        out[base + 2 * plane + p] = blue[pixels[q + 2]!]!;
      }
    }),
  );
  return out;
}
