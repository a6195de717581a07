import type { DecodedImage } from "../assets/decoded-media.ts";
import { fromExportFolder } from "./adapters/hf-transformers-env.ts";
import { imagesToTensorData, resizeForModel, type ImageTensorSpec } from "./image-preprocess.ts";
import type { ModelManifest } from "./model-manifest.ts";

/** CLIP's pixel statistics: what a CLIP on a server expects unless the manifest says otherwise. */
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export type ImageTensor = { datatype: "FP32" | "UINT8"; shape: number[]; data: Float32Array | Uint8Array };

/**
 * The tensor a remote image tower takes, from the manifest: NCHW FP32 is the same normalised pixel_values the
 * local CLIP adapter computes (image-preprocess.ts), so a Triton-served CLIP gives the local export's vectors;
 * UINT8 sends the resized RGB bytes for a server that normalises them itself.
 */
export async function imageTensor(images: DecodedImage[], manifest: ModelManifest, size: { width: number; height: number }): Promise<ImageTensor> {
  const given = manifest.preprocessing.image;
  const spec: ImageTensorSpec = {
    width: size.width,
    height: size.height,
    resize: given?.resize ?? "cover-crop",
    scale: given?.scale ?? 1 / 255,
    mean: given?.mean ?? CLIP_MEAN,
    std: given?.std ?? CLIP_STD,
  };
  const layout = given?.layout ?? "NCHW";
  const datatype = given?.datatype ?? "FP32";
  const shape = layout === "NCHW" ? [images.length, 3, size.height, size.width] : [images.length, size.height, size.width, 3];
  if (layout === "NCHW" && datatype === "FP32") return { datatype, shape, data: await imagesToTensorData(images, spec) };
  const plane = size.width * size.height;
  const data = datatype === "FP32" ? new Float32Array(images.length * 3 * plane) : new Uint8Array(images.length * 3 * plane);
  const resized = await Promise.all(images.map((image) => resizeForModel(image, spec)));
  resized.forEach(({ rgb }, index) => {
    const base = index * 3 * plane;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const byte = rgb[p * 3 + c]!;
        const value = datatype === "FP32" ? (byte * spec.scale - spec.mean[c]!) / spec.std[c]! : byte;
        data[layout === "NCHW" ? base + c * plane + p : base + p * 3 + c] = value;
      }
    }
  });
  return { datatype, shape, data };
}

export type TokenizedTexts = { ids: BigInt64Array; mask: BigInt64Array; shape: [number, number] };

export type RemoteTokenizer = (texts: string[]) => TokenizedTexts;

/**
 * The tokenizer of a Hugging Face export folder (files.tokenizer), run here because a Triton-served text tower
 * takes token ids: padded to the longest text of the batch and cut at maxLength, as the local CLIP adapter does.
 */
export async function loadRemoteTokenizer(folder: string, maxLength: number): Promise<RemoteTokenizer> {
  const tokenizer = await fromExportFolder(folder, (id, hf) => hf.AutoTokenizer.from_pretrained(id, { local_files_only: true }));
  return (texts) => {
    const encoded = tokenizer(texts, { padding: true, truncation: true, max_length: maxLength }) as {
      input_ids: { data: BigInt64Array; dims: number[] };
      attention_mask: { data: BigInt64Array; dims: number[] };
    };
    const [rows, columns] = encoded.input_ids.dims as [number, number];
    return { ids: encoded.input_ids.data, mask: encoded.attention_mask.data, shape: [rows, columns] };
  };
}

/** A PNG data: URL of an image, resized first when the manifest gives a size (less to send). */
export async function imageDataUrl(image: DecodedImage, size: { width: number; height: number; resize: "cover-crop" | "stretch" } | undefined): Promise<string> {
  const sharp = (await import("sharp")).default;
  const source = size ? await resizeForModel(image, size) : image;
  const png = await sharp(source.rgb, { raw: { width: source.width, height: source.height, channels: 3 } }).png().toBuffer();
  return `data:image/png;base64,${png.toString("base64")}`;
}
