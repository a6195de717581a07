import * as tf from "@tensorflow/tfjs";
import { applyDense, denseLayer, EMBEDDING_SIZE, l2Normalize, layerValues, type DenseLayer } from "./tower-weights.ts";
import { FLOAT, OnnxGraph } from "./onnx-graph.ts";
import { addPatchFrontEnd, featureSize, type PatchFrontEnd, type PatchFrontEndSpec } from "./patch-features.ts";

/** Square input side in pixels; the preprocessor resizes and crops to it. */
export const IMAGE_SIZE = 48;
/** CLIP's own normalisation constants, so the preprocessor config is the standard one. */
export const IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const IMAGE_STD = [0.26862954, 0.26130258, 0.27577711];

/** The fixed front end: 6x6 patches, 256 k-means filters, mean over 2x2 cells plus a max, 8x8 colour cells (1388 features). */
export const FRONT_END_SPEC: PatchFrontEndSpec = { size: IMAGE_SIZE, patch: 6, filters: 256, grids: [2], alpha: 0.25, colourCell: 8 };
/** Hidden width of the trained head; 0: one linear layer (TRAIN_IMAGE_HIDDEN overrides it, for style-proxy.ts). */
export const IMAGE_HEAD_SIZE = Number(process.env.TRAIN_IMAGE_HIDDEN ?? 0);

/** RGB bytes (H x W x 3) -> CLIP-normalised NCHW floats, as the preprocessor gives pixel_values. */
export function normalisePixels(pixels: Uint8Array, side = IMAGE_SIZE): Float32Array {
  const plane = side * side;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) out[c * plane + p] = (pixels[p * 3 + c]! / 255 - IMAGE_MEAN[c]!) / IMAGE_STD[c]!;
  }
  return out;
}

/**
 * The image tower: a fixed front end (patch-features.ts: whitened k-means
 * filters, pooled) then a trained head: standardise each feature (statistics
 * of the training drawings), one dense layer to 128 (or dense + ReLU + dense
 * with IMAGE_HEAD_SIZE > 0), L2-normalise.
 * Training runs the head on precomputed features; the export chains both.
 */
export class ImageTower {
  readonly layers: DenseLayer[];
  readonly featureCount: number;

  constructor(
    readonly frontEnd: PatchFrontEnd,
    readonly featureMean: Float32Array,
    readonly featureStd: Float32Array,
    seed: number,
  ) {
    this.featureCount = featureMean.length;
    if (this.featureCount !== featureSize(frontEnd.spec) && !process.env.PROXY_USE) throw new Error("feature statistics do not match the front end");
    this.layers =
      IMAGE_HEAD_SIZE > 0
        ? [denseLayer("image/head0", this.featureCount, IMAGE_HEAD_SIZE, seed + 10), denseLayer("image/head1", IMAGE_HEAD_SIZE, EMBEDDING_SIZE, seed + 11)]
        : [denseLayer("image/head0", this.featureCount, EMBEDDING_SIZE, seed + 10)];
  }

  /** features: [B, F], already standardised. Returns unit-length embeddings [B, D]. */
  embed(features: tf.Tensor2D): tf.Tensor2D {
    if (this.layers.length === 1) return l2Normalize(applyDense(this.layers[0]!, features)) as tf.Tensor2D;
    const hidden = tf.relu(applyDense(this.layers[0]!, features));
    return l2Normalize(applyDense(this.layers[1]!, hidden)) as tf.Tensor2D;
  }

  /** Standardises raw front-end features in place. */
  standardise(features: Float32Array): Float32Array {
    for (let i = 0; i < features.length; i++) features[i] = (features[i]! - this.featureMean[i]!) / this.featureStd[i]!;
    return features;
  }

  /** The same network as `vision_model.onnx`: pixel_values [B,3,H,W] -> image_embeds [B,D]. */
  toOnnx(): Uint8Array {
    const graph = new OnnxGraph("tessera_emoji_clip_vision");
    const input = graph.input("pixel_values", FLOAT, ["batch_size", 3, IMAGE_SIZE, IMAGE_SIZE]);
    const features = addPatchFrontEnd(graph, input, this.frontEnd);
    const standard = graph.op("Div", [
      graph.op("Sub", [features, graph.floats([this.featureCount], this.featureMean, "feature_mean")]),
      graph.floats([this.featureCount], this.featureStd, "feature_std"),
    ]);
    let x = standard;
    this.layers.forEach((layer, i) => {
      const { weight, bias } = layerValues(layer);
      x = graph.dense(x, weight, bias, layer.inSize, layer.outSize);
      if (i < this.layers.length - 1) x = graph.op("Relu", [x]);
    });
    graph.l2Normalize(x, "image_embeds");
    graph.output("image_embeds", FLOAT, ["batch_size", EMBEDDING_SIZE]);
    return graph.encode();
  }

  variables(): tf.Variable[] {
    return this.layers.flatMap((layer) => [layer.weight, layer.bias]);
  }
}
