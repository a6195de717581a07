import * as tf from "@tensorflow/tfjs";
import { applyDense, denseLayer, EMBEDDING_SIZE, l2Normalize, layerValues, type DenseLayer } from "./tower-weights.ts";
import { FLOAT, INT64, OnnxGraph } from "./onnx-graph.ts";

const LEARNED_WORD_SIZE = 96;
const HIDDEN_SIZE = 256;

/**
 * Word vectors given from outside (e.g. a pretrained encoder's), one row per token id, kept fixed in training;
 * `learnedSize` more dimensions per word start at zero and are learned (a word never trained on keeps zeros there).
 */
export type FixedWordVectors = { values: Float32Array; size: number; learnedSize?: number };

/**
 * A bag-of-words text tower: the mean of the tokens' vectors (masked by
 * attention_mask), then a two-layer MLP. Training feeds the mean as a
 * [B, vocab] matrix of token weights times the table (a matmul the wasm
 * backend differentiates); the export does the same with Gather.
 */
export class TextTower {
  readonly wordVectors: tf.Variable;
  /** The learned dimensions beside fixed word vectors, if any. */
  readonly learnedWordVectors?: tf.Variable;
  readonly wordSize: number;
  readonly layers: DenseLayer[];

  /** Without `fixedWordVectors` the word vectors are learned from scratch; with them, only the MLP above is trained. */
  constructor(readonly vocabSize: number, seed: number, readonly fixedWordVectors?: FixedWordVectors) {
    const learnedSize = fixedWordVectors?.learnedSize ?? 0;
    this.wordSize = fixedWordVectors ? fixedWordVectors.size + learnedSize : LEARNED_WORD_SIZE;
    this.wordVectors = fixedWordVectors
      ? tf.variable(tf.tensor2d(fixedWordVectors.values, [vocabSize, fixedWordVectors.size]), false)
      : tf.variable(tf.randomNormal([vocabSize, this.wordSize], 0, 0.3, "float32", seed), true);
    if (learnedSize > 0) this.learnedWordVectors = tf.variable(tf.zeros([vocabSize, learnedSize]), true);
    this.layers = [denseLayer("text/head0", this.wordSize, HIDDEN_SIZE, seed + 1), denseLayer("text/head1", HIDDEN_SIZE, EMBEDDING_SIZE, seed + 2)];
  }

  /** tokenWeights: [B, vocab], each row the token counts divided by the row's length. */
  embed(tokenWeights: tf.Tensor2D): tf.Tensor2D {
    const pooled = tf.matMul(tokenWeights, this.table());
    const hidden = tf.relu(applyDense(this.layers[0]!, pooled));
    return l2Normalize(applyDense(this.layers[1]!, hidden)) as tf.Tensor2D;
  }

  /** Every word's vector: the fixed or learned table, and the learned dimensions beside it. */
  private table(): tf.Tensor2D {
    return (this.learnedWordVectors ? tf.concat([this.wordVectors, this.learnedWordVectors], 1) : this.wordVectors) as tf.Tensor2D;
  }

  /** The same network as `text_model.onnx`: input_ids, attention_mask [B,L] int64 -> text_embeds [B,D]. */
  toOnnx(): Uint8Array {
    const graph = new OnnxGraph("tessera_emoji_clip_text");
    const ids = graph.input("input_ids", INT64, ["batch_size", "sequence_length"]);
    const mask = graph.input("attention_mask", INT64, ["batch_size", "sequence_length"]);
    const table = graph.floats([this.vocabSize, this.wordSize], tf.tidy(() => this.table().dataSync() as Float32Array), "word_vectors");
    const vectors = graph.op("Gather", [table, ids], { axis: 0 });
    const maskFloat = graph.op("Cast", [mask], { to: FLOAT });
    const masked = graph.op("Mul", [vectors, graph.op("Unsqueeze", [maskFloat, graph.int64s([2], "axes")])]);
    const summed = graph.op("ReduceSum", [masked, graph.int64s([1], "axes")], { keepdims: 0 });
    const count = graph.op("ReduceSum", [maskFloat, graph.int64s([1], "axes")], { keepdims: 1 });
    // An empty text has no tokens: divide by at least one so it embeds to zeros, not NaN.
    const pooled = graph.op("Div", [summed, graph.op("Max", [count, graph.floats([1], [1], "one")])]);
    const head0 = layerValues(this.layers[0]!);
    const hidden = graph.op("Relu", [graph.dense(pooled, head0.weight, head0.bias, this.wordSize, HIDDEN_SIZE)]);
    const head1 = layerValues(this.layers[1]!);
    graph.l2Normalize(graph.dense(hidden, head1.weight, head1.bias, HIDDEN_SIZE, EMBEDDING_SIZE), "text_embeds");
    graph.output("text_embeds", FLOAT, ["batch_size", EMBEDDING_SIZE]);
    return graph.encode();
  }

  variables(): tf.Variable[] {
    const head = this.layers.flatMap((layer) => [layer.weight, layer.bias]);
    if (!this.fixedWordVectors) return [this.wordVectors, ...head];
    return this.learnedWordVectors ? [this.learnedWordVectors, ...head] : head;
  }
}
