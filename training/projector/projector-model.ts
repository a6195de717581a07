import * as tf from "@tensorflow/tfjs";
import { applyDense, denseLayer, l2Normalize, layerValues, type DenseLayer } from "../tower-weights.ts";
import { FLOAT, OnnxGraph } from "../onnx-graph.ts";

export type ProjectorKind = "linear" | "mlp";

export const PROJECTOR_INPUT = "embeds";
export const PROJECTOR_OUTPUT = "projected_embeds";

/**
 * Maps one encoder's vectors into another space: standardise each input
 * dimension (statistics from the training pairs), then one dense layer
 * (linear) or two with a ReLU between (mlp), then L2-normalise.
 */
export class ProjectorModel {
  readonly layers: DenseLayer[];

  constructor(
    readonly kind: ProjectorKind,
    readonly inSize: number,
    readonly outSize: number,
    readonly mean: Float32Array,
    readonly std: Float32Array,
    hiddenSize: number,
    seed: number,
  ) {
    this.layers =
      kind === "linear"
        ? [denseLayer("projector/0", inSize, outSize, seed)]
        : [denseLayer("projector/0", inSize, hiddenSize, seed), denseLayer("projector/1", hiddenSize, outSize, seed + 1)];
  }

  /** Unnormalised output; `project` adds the L2 normalisation the export has. */
  raw(x: tf.Tensor2D): tf.Tensor2D {
    let h = tf.div(tf.sub(x, tf.tensor1d(this.mean)), tf.tensor1d(this.std));
    this.layers.forEach((layer, i) => {
      h = applyDense(layer, h);
      if (i < this.layers.length - 1) h = tf.relu(h);
    });
    return h as tf.Tensor2D;
  }

  project(x: tf.Tensor2D): tf.Tensor2D {
    return l2Normalize(this.raw(x)) as tf.Tensor2D;
  }

  variables(): tf.Variable[] {
    return this.layers.flatMap((layer) => [layer.weight, layer.bias]);
  }

  /** embeds [B, in] -> projected_embeds [B, out]. */
  toOnnx(): Uint8Array {
    const graph = new OnnxGraph("tessera_projector");
    const input = graph.input(PROJECTOR_INPUT, FLOAT, ["batch_size", this.inSize]);
    let x = graph.op("Div", [graph.op("Sub", [input, graph.floats([this.inSize], this.mean, "mean")]), graph.floats([this.inSize], this.std, "std")]);
    this.layers.forEach((layer, i) => {
      const { weight, bias } = layerValues(layer);
      x = graph.dense(x, weight, bias, layer.inSize, layer.outSize);
      if (i < this.layers.length - 1) x = graph.op("Relu", [x]);
    });
    graph.l2Normalize(x, PROJECTOR_OUTPUT);
    graph.output(PROJECTOR_OUTPUT, FLOAT, ["batch_size", this.outSize]);
    return graph.encode();
  }
}
