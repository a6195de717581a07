import * as tf from "@tensorflow/tfjs";
import { applyDense, denseLayer, l2Normalize, layerValues, type DenseLayer } from "../tower-weights.ts";
import { FLOAT, OnnxGraph } from "../onnx-graph.ts";

export type ProjectorKind = "linear" | "mlp" | "prototype";

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

/**
 * A projector that remembers the pairs rather than fitting weights to them:
 * the input is standardised and L2-normalised, compared with one prototype
 * per key (the normalised mean of that key's inputs), and the output is the
 * softmax(sharpness x similarity)-weighted mean of the keys' targets (a kernel
 * regression, or one attention layer whose keys and values are the pairs).
 * Where the source encoder separates the keys well but a fitted map does not
 * generalise across, say, voices, this does better; it knows only the keys
 * it was given (an input unlike all of them gets a blend of the nearest).
 */
export class PrototypeProjector {
  readonly kind = "prototype" as const;

  constructor(
    readonly inSize: number,
    readonly outSize: number,
    readonly mean: Float32Array,
    readonly std: Float32Array,
    /** [keys, inSize], unit rows. */
    readonly prototypes: Float32Array,
    /** [keys, outSize], unit rows. */
    readonly targets: Float32Array,
    readonly sharpness: number,
  ) {}

  get keys(): number {
    return this.prototypes.length / this.inSize;
  }

  /** Standardised, unit-length input. */
  prepare(vector: Float32Array): Float32Array {
    const out = new Float32Array(this.inSize);
    let norm = 0;
    for (let d = 0; d < this.inSize; d++) norm += (out[d] = (vector[d]! - this.mean[d]!) / this.std[d]!) ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < this.inSize; d++) out[d]! /= norm;
    return out;
  }

  /** Output for prepared inputs; `similarities` are to every prototype. */
  combine(similarities: Float32Array, sharpness = this.sharpness): Float32Array {
    let max = -Infinity;
    for (const value of similarities) max = Math.max(max, value);
    const out = new Float32Array(this.outSize);
    for (let k = 0; k < similarities.length; k++) {
      const weight = Math.exp(sharpness * (similarities[k]! - max));
      if (weight < 1e-7) continue;
      for (let d = 0; d < this.outSize; d++) out[d]! += weight * this.targets[k * this.outSize + d]!;
    }
    let norm = 0;
    for (const value of out) norm += value * value;
    norm = Math.sqrt(norm) || 1;
    return out.map((value) => value / norm);
  }

  similarities(prepared: Float32Array): Float32Array {
    const out = new Float32Array(this.keys);
    for (let k = 0; k < out.length; k++) {
      let dot = 0;
      const base = k * this.inSize;
      for (let d = 0; d < this.inSize; d++) dot += this.prototypes[base + d]! * prepared[d]!;
      out[k] = dot;
    }
    return out;
  }

  projectRows(vectors: Float32Array[]): Float32Array[] {
    return vectors.map((vector) => this.combine(this.similarities(this.prepare(vector))));
  }

  /** embeds [B, in] -> projected_embeds [B, out]: Sub/Div, L2, MatMul, Mul, Softmax, MatMul, L2. */
  toOnnx(): Uint8Array {
    const graph = new OnnxGraph("tessera_prototype_projector");
    const input = graph.input(PROJECTOR_INPUT, FLOAT, ["batch_size", this.inSize]);
    const standard = graph.op("Div", [graph.op("Sub", [input, graph.floats([this.inSize], this.mean, "mean")]), graph.floats([this.inSize], this.std, "std")]);
    const prepared = graph.l2Normalize(standard, "prepared");
    const transposed = new Float32Array(this.inSize * this.keys);
    for (let k = 0; k < this.keys; k++) for (let d = 0; d < this.inSize; d++) transposed[d * this.keys + k] = this.prototypes[k * this.inSize + d]!;
    const similarity = graph.op("MatMul", [prepared, graph.floats([this.inSize, this.keys], transposed, "prototypes")]);
    const weights = graph.op("Softmax", [graph.op("Mul", [similarity, graph.floats([1], [this.sharpness], "sharpness")])], { axis: -1 });
    graph.l2Normalize(graph.op("MatMul", [weights, graph.floats([this.keys, this.outSize], this.targets, "targets")]), PROJECTOR_OUTPUT);
    graph.output(PROJECTOR_OUTPUT, FLOAT, ["batch_size", this.outSize]);
    return graph.encode();
  }
}
