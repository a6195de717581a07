import * as tf from "@tensorflow/tfjs";

/**
 * Symmetric InfoNCE (CLIP's loss): row i of `a` should pick row i of `b` out
 * of the batch, and the other way round. Both inputs are unit-length.
 */
export function infoNceLoss(a: tf.Tensor2D, b: tf.Tensor2D, logitScale: tf.Tensor): tf.Scalar {
  const logits = tf.mul(tf.matMul(a, b, false, true), logitScale) as tf.Tensor2D;
  const labels = tf.oneHot(tf.range(0, a.shape[0], 1, "int32"), a.shape[0]);
  const forward = tf.losses.softmaxCrossEntropy(labels, logits);
  const backward = tf.losses.softmaxCrossEntropy(labels, logits.transpose());
  return tf.div(tf.add(forward, backward), 2) as tf.Scalar;
}
