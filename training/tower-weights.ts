import * as tf from "@tensorflow/tfjs";

/** One trainable dense layer, weights stored [in, out] as tfjs and ONNX MatMul both want them. */
export type DenseLayer = { weight: tf.Variable; bias: tf.Variable; inSize: number; outSize: number };

/** Size of the shared space both towers (and the audio projector) write into. */
export const EMBEDDING_SIZE = 128;

/** He-initialised weights from a seeded generator, so a run is repeatable. */
export function denseLayer(name: string, inSize: number, outSize: number, seed: number): DenseLayer {
  return {
    weight: tf.variable(tf.randomNormal([inSize, outSize], 0, Math.sqrt(2 / inSize), "float32", seed), true),
    bias: tf.variable(tf.zeros([outSize]), true),
    inSize,
    outSize,
  };
}

export function applyDense(layer: DenseLayer, x: tf.Tensor): tf.Tensor {
  return tf.add(tf.matMul(x as tf.Tensor2D, layer.weight as tf.Tensor2D), layer.bias);
}

export function l2Normalize(x: tf.Tensor): tf.Tensor {
  return tf.div(x, tf.maximum(tf.norm(x, "euclidean", -1, true), 1e-12));
}

export function layerValues(layer: DenseLayer): { weight: Float32Array; bias: Float32Array } {
  return { weight: layer.weight.dataSync() as Float32Array, bias: layer.bias.dataSync() as Float32Array };
}
