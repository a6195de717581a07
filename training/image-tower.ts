import * as tf from "@tensorflow/tfjs";
import { applyDense, denseLayer, EMBEDDING_SIZE, l2Normalize, layerValues, type DenseLayer } from "./tower-weights.ts";
import { FLOAT, OnnxGraph } from "./onnx-graph.ts";

/** Square input side in pixels; the preprocessor resizes and crops to it. */
export const IMAGE_SIZE = 32;
/** CLIP's own normalisation constants, so the preprocessor config is the standard one. */
export const IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const IMAGE_STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * A small patch-merging network: 4x4 patches, then two 2x2 merges, each a dense
 * layer over the concatenated patch (a stride=kernel convolution). It needs only
 * reshape, transpose and matmul, which tfjs's wasm backend can differentiate
 * (it has no convolution gradients).
 */
export class ImageTower {
  readonly layers: DenseLayer[];
  private readonly stages = [
    { patch: 4, channels: 48 },
    { patch: 2, channels: 96 },
    { patch: 2, channels: 160 },
  ];

  constructor(seed: number) {
    let channels = 3;
    let side = IMAGE_SIZE;
    this.layers = this.stages.map((stage, i) => {
      const layer = denseLayer(`image/stage${i}`, stage.patch * stage.patch * channels, stage.channels, seed + i);
      channels = stage.channels;
      side /= stage.patch;
      return layer;
    });
    this.layers.push(denseLayer("image/head0", side * side * channels, 256, seed + 10));
    this.layers.push(denseLayer("image/head1", 256, EMBEDDING_SIZE, seed + 11));
  }

  /** pixels: [B, H, W, 3], already normalised. Returns unit-length embeddings [B, D]. */
  embed(pixels: tf.Tensor4D): tf.Tensor2D {
    const batch = pixels.shape[0];
    let x: tf.Tensor = pixels;
    let side = IMAGE_SIZE;
    let channels = 3;
    this.stages.forEach((stage, i) => {
      const p = stage.patch;
      const grid = side / p;
      const patches = x
        .reshape([batch, grid, p, grid, p, channels])
        .transpose([0, 1, 3, 2, 4, 5])
        .reshape([batch * grid * grid, p * p * channels]);
      x = tf.relu(applyDense(this.layers[i]!, patches)).reshape([batch, grid, grid, stage.channels]);
      side = grid;
      channels = stage.channels;
    });
    const flat = x.reshape([batch, side * side * channels]);
    const hidden = tf.relu(applyDense(this.layers[3]!, flat));
    return l2Normalize(applyDense(this.layers[4]!, hidden)) as tf.Tensor2D;
  }

  /** The same network as `vision_model.onnx`: pixel_values [B,3,H,W] -> image_embeds [B,D]. */
  toOnnx(): Uint8Array {
    const graph = new OnnxGraph("tessera_emoji_clip_vision");
    const input = graph.input("pixel_values", FLOAT, ["batch_size", 3, IMAGE_SIZE, IMAGE_SIZE]);
    let x = graph.op("Transpose", [input], { perm: [0, 2, 3, 1] });
    let side = IMAGE_SIZE;
    let channels = 3;
    this.stages.forEach((stage, i) => {
      const p = stage.patch;
      const grid = side / p;
      // A 0 in a Reshape shape copies that input dimension: the batch size.
      x = graph.op("Reshape", [x, graph.int64s([0, grid, p, grid, p, channels])]);
      x = graph.op("Transpose", [x], { perm: [0, 1, 3, 2, 4, 5] });
      x = graph.op("Reshape", [x, graph.int64s([0, grid, grid, p * p * channels])]);
      const { weight, bias } = layerValues(this.layers[i]!);
      x = graph.op("Relu", [graph.dense(x, weight, bias, p * p * channels, stage.channels)]);
      side = grid;
      channels = stage.channels;
    });
    x = graph.op("Reshape", [x, graph.int64s([0, side * side * channels])]);
    const head0 = layerValues(this.layers[3]!);
    x = graph.op("Relu", [graph.dense(x, head0.weight, head0.bias, side * side * channels, 256)]);
    const head1 = layerValues(this.layers[4]!);
    x = graph.dense(x, head1.weight, head1.bias, 256, EMBEDDING_SIZE);
    graph.l2Normalize(x, "image_embeds");
    graph.output("image_embeds", FLOAT, ["batch_size", EMBEDDING_SIZE]);
    return graph.encode();
  }

  variables(): tf.Variable[] {
    return this.layers.flatMap((layer) => [layer.weight, layer.bias]);
  }
}
