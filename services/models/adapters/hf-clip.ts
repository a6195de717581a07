import type { DecodedImage } from "../../assets/decoded-media.ts";
import fs from "node:fs";
import path from "node:path";
import type { Tensor } from "@huggingface/transformers";
import { imagesToTensorData, type ImageTensorSpec } from "../image-preprocess.ts";
import { sessionTuning } from "../execution-provider.ts";
import type { ModelAdapter } from "../model-adapter.ts";
import { modelNotFound } from "../model-errors.ts";
import type { ModelManifest } from "../model-manifest.ts";
import { estimateTokens, type TextEncoderSpec } from "../text-encoder-thread.ts";
import { rows } from "../vector-math.ts";
import { capChars } from "./tfjs-universal-sentence-encoder.ts";

/**
 * A standard Hugging Face CLIP/SigLIP ONNX export (onnx/text_model.onnx,
 * onnx/vision_model.onnx, tokenizer and preprocessor configs) through
 * transformers.js' own CLIP classes; images are preprocessed with sharp from
 * the manifest, filled in from preprocessor_config.json. The text tower and
 * its tokeniser run on the runtime's text encoder thread, the image tower on
 * its inference thread: neither holds the event loop.
 */
export const hfClipAdapter: ModelAdapter = {
  embeds: ["TEXT", "IMAGE"],
  requiredFiles: (model) =>
    ["config.json", "tokenizer.json", "onnx/text_model.onnx", "onnx/vision_model.onnx"].map((file) => path.join(model.files.dir!, file)),
  async load(model, context) {
    const folder = model.files.dir!;
    const spec = imageSpec(model.manifest, folder);
    const outputs = { text: model.manifest.outputs.text ?? "text_embeds", image: model.manifest.outputs.image ?? "image_embeds" };
    const maxLength = model.manifest.preprocessing.text?.maxLength ?? 77;
    const textSpec: TextEncoderSpec = {
      kind: "clip-text",
      folder,
      device: context.execution.device,
      sessionOptions: sessionTuning(context.intraOpThreads),
      maxLength,
      output: outputs.text,
    };
    // Each tower loads when first needed: a text-only query never loads the vision graph, an image never the text one.
    let textGraph: Promise<void> | undefined;
    const checkText = () => (textGraph ??= forgetOnFailure(requireGraph(model.manifest.name, folder, "text_model"), () => (textGraph = undefined)));
    let visionGraph: Promise<void> | undefined;
    // The image tower is the ingest path's hot graph: it runs on the inference thread, so the event loop
    // (uploads, job rows, the next batch's decoding) goes on while it computes. Same file transformers.js
    // would pick for dtype fp32, same provider and threads; its session loads on the first batch.
    const visionFile = path.join(folder, "onnx", "vision_model.onnx");
    const checkVision = () => (visionGraph ??= forgetOnFailure(requireGraph(model.manifest.name, folder, "vision_model"), () => (visionGraph = undefined)));

    return {
      countTokens: (text) => estimateTokens(text, maxLength),
      async embedText(texts) {
        await checkText();
        return context.textThread.embed(textSpec, texts.map((text) => capChars(text, maxLength)));
      },
      imageInput: { width: spec.width, height: spec.height, resize: spec.resize },
      // The inference thread queues the batches handed over while it computes and runs them as one.
      queuesBatches: ["embedImages"],
      ranBatchSizes: (operation) => (operation === "embedImages" ? context.thread.batchSizes(visionFile) : undefined),
      async embedImages(images: DecodedImage[]) {
        await checkVision();
        // Into a buffer an earlier batch gave back: no fresh pages to fault in and zero per batch.
        const data = await imagesToTensorData(images, spec, (length) => context.thread.float32(length));
        const result = await context.thread.run(
          visionFile,
          { pixel_values: { type: "float32", data, dims: [images.length, 3, spec.height, spec.width] } },
          [outputs.image],
          // Joined on the thread with the batches queued beside it, up to the manifest's batch size.
          context.batching ? model.manifest.batch.maxBatchSize : undefined,
        );
        return tensorRows(result[outputs.image], images.length, outputs.image);
      },
    };
  },
};

/** A tower that failed to load is tried again on the next call (the file may have been fixed). */
function forgetOnFailure<T>(loading: Promise<T>, forget: () => void): Promise<T> {
  loading.catch(forget);
  return loading;
}

/** A tower's graph must be there (transformers.js would say so less plainly). */
async function requireGraph(model: string, folder: string, graph: string) {
  const file = path.join(folder, "onnx", `${graph}.onnx`);
  if (!fs.existsSync(file)) throw modelNotFound(model, `file ${file} is missing`, { file });
}

function tensorRows(tensor: Pick<Tensor, "dims" | "data"> | undefined, batch: number, name: string): Float32Array[] {
  if (!tensor) throw new Error(`the graph has no output ${name}`);
  if (tensor.dims.length !== 2 || tensor.dims[0] !== batch) {
    throw new Error(`output ${name} has shape [${tensor.dims.join(", ")}], expected [${batch}, dimensions]`);
  }
  return rows(tensor.data as Float32Array, batch);
}

type PreprocessorConfig = {
  size?: number | { shortest_edge?: number; height?: number; width?: number };
  crop_size?: number | { height?: number; width?: number };
  do_center_crop?: boolean;
  image_mean?: number[];
  image_std?: number[];
  rescale_factor?: number;
};

/** The manifest's image preprocessing, with gaps filled from the export's preprocessor_config.json. */
function imageSpec(manifest: ModelManifest, folder: string): ImageTensorSpec {
  const configFile = path.join(folder, "preprocessor_config.json");
  const config: PreprocessorConfig = fs.existsSync(configFile) ? JSON.parse(fs.readFileSync(configFile, "utf8")) : {};
  const given = manifest.preprocessing.image;
  const side = (value: PreprocessorConfig["size"] | PreprocessorConfig["crop_size"], key: "height" | "width") =>
    typeof value === "number" ? value : value && (value[key] ?? ("shortest_edge" in value ? value.shortest_edge : undefined));
  const source = config.do_center_crop === false ? config.size : (config.crop_size ?? config.size);
  const width = given?.width ?? side(source, "width") ?? 224;
  const height = given?.height ?? side(source, "height") ?? 224;
  return {
    width,
    height,
    resize: given?.resize ?? "cover-crop",
    scale: given?.scale ?? config.rescale_factor ?? 1 / 255,
    mean: given?.mean ?? (config.image_mean as [number, number, number]) ?? [0.48145466, 0.4578275, 0.40821073],
    std: given?.std ?? (config.image_std as [number, number, number]) ?? [0.26862954, 0.26130258, 0.27577711],
  };
}
