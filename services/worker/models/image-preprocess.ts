import sharp from "sharp";
import type { DecodedImage } from "../ingest/ingest-stage.ts";

export type ImageTensorSpec = {
  width: number;
  height: number;
  resize: "cover-crop" | "stretch";
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
};

/**
 * Raw RGB8 images -> one float32 NCHW batch, as the manifest says: resize
 * (shortest edge then centre crop, or stretch) with sharp, then
 * (pixel * scale - mean) / std per channel.
 */
export async function imagesToTensorData(images: DecodedImage[], spec: ImageTensorSpec): Promise<Float32Array> {
  const plane = spec.width * spec.height;
  const out = new Float32Array(images.length * 3 * plane);
  await Promise.all(
    images.map(async (image, index) => {
      const pixels = await sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } })
        .resize(spec.width, spec.height, { fit: spec.resize === "stretch" ? "fill" : "cover", position: "centre", kernel: "cubic" })
        .removeAlpha()
        .raw()
        .toBuffer();
      const base = index * 3 * plane;
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) {
          out[base + c * plane + p] = (pixels[p * 3 + c]! * spec.scale - spec.mean[c]!) / spec.std[c]!;
        }
      }
    }),
  );
  return out;
}
