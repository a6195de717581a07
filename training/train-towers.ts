import * as tf from "@tensorflow/tfjs";
import { infoNceLoss } from "./contrastive-loss.ts";
import { ImageTower } from "./image-tower.ts";
import type { PatchFrontEnd } from "./patch-features.ts";
import { seededRandom, shuffled } from "./seeded-random.ts";
import { TextTower, type FixedWordVectors } from "./text-tower.ts";
import { useTrainingBackend } from "./training-backend.ts";

export type TowerTrainingData = {
  frontEnd: PatchFrontEnd;
  /** Per-feature mean and standard deviation over the training drawings (the export standardises with them). */
  featureMean: Float32Array;
  featureStd: Float32Array;
  /** Per training concept, per training style: standardised front-end features of its variants; variant 0 is the clean drawing. */
  features: Float32Array[][][];
  /** Per training concept: its texts as token ids; the first is the plain label. */
  texts: number[][][];
  vocabSize: number;
  /** Pretrained word vectors for the text tower, kept fixed (default: learned from scratch). */
  wordVectors?: FixedWordVectors;
};

export type TowerTrainingOptions = {
  /** Optimisation steps (fixed, so a run is repeatable whatever the machine's load). */
  steps: number;
  /** Concepts per step. */
  batchSize: number;
  learningRate: number;
  /** Dropout on the standardised image features during training. */
  featureDropout: number;
  seed: number;
  log?: (line: string) => void;
};

/**
 * CLIP-style training of both towers' trainable parts: each step takes
 * `batchSize` concepts, one drawing in each of two styles (augmented) and one
 * of their texts, and minimises InfoNCE between image and text and half of
 * InfoNCE between the two drawings (so the image head learns what stays the
 * same across artists). The image side trains on front-end features computed
 * once (patch-features.ts), so a step is a few small matrix products.
 */
export async function trainTowers(data: TowerTrainingData, options: TowerTrainingOptions) {
  await useTrainingBackend();
  const log = options.log ?? (() => {});
  const random = seededRandom(options.seed);
  const image = new ImageTower(data.frontEnd, data.featureMean, data.featureStd, options.seed);
  const text = new TextTower(data.vocabSize, options.seed + 100, data.wordVectors);
  const logScale = tf.variable(tf.scalar(Math.log(1 / 0.07)), true);
  const variables = [...image.variables(), ...text.variables(), logScale];
  const optimizer = tf.train.adam(options.learningRate);
  const F = image.featureCount;
  const conceptCount = data.features.length;
  const batchSize = Math.min(options.batchSize, conceptCount);
  const started = performance.now();
  let order: number[] = [];
  let lastLoss = Number.NaN;

  const pickVariant = (variants: Float32Array[]) => (random() < 0.2 ? variants[0]! : variants[1 + Math.floor(random() * (variants.length - 1))]!);
  for (let step = 0; step < options.steps; step++) {
    if (order.length < batchSize) order = [...order, ...shuffled([...Array(conceptCount).keys()], random)];
    const concepts = order.splice(0, batchSize);
    const first = new Float32Array(concepts.length * F);
    const second = new Float32Array(concepts.length * F);
    const tokenWeights = new Float32Array(concepts.length * data.vocabSize);
    concepts.forEach((concept, row) => {
      const styles = data.features[concept]!;
      const a = Math.floor(random() * styles.length);
      const b = styles.length > 1 ? (a + 1 + Math.floor(random() * (styles.length - 1))) % styles.length : a;
      first.set(pickVariant(styles[a]!), row * F);
      second.set(pickVariant(styles[b]!), row * F);
      const texts = data.texts[concept]!;
      // The plain label is the query users type most: give it half the draws.
      const tokens = random() < 0.5 ? texts[0]! : texts[Math.floor(random() * texts.length)]!;
      for (const id of tokens) tokenWeights[row * data.vocabSize + id]! += 1 / tokens.length;
    });
    const progress = step / options.steps;
    const warmup = Math.min(1, (step + 1) / 50);
    (optimizer as unknown as { learningRate: number }).learningRate =
      options.learningRate * warmup * (0.02 + 0.98 * 0.5 * (1 + Math.cos(Math.PI * progress)));
    const dropoutSeed = Math.floor(random() * 2 ** 31);
    const loss = tf.tidy(() =>
      optimizer.minimize(() => {
        const scale = tf.exp(tf.minimum(logScale, Math.log(100)));
        const drop = (x: tf.Tensor2D, salt: number) => (options.featureDropout > 0 ? (tf.dropout(x, options.featureDropout, undefined, dropoutSeed + salt) as tf.Tensor2D) : x);
        const imageA = image.embed(drop(tf.tensor2d(first, [concepts.length, F]), 0));
        const imageB = image.embed(drop(tf.tensor2d(second, [concepts.length, F]), 1));
        const textEmbeds = text.embed(tf.tensor2d(tokenWeights, [concepts.length, data.vocabSize]));
        const imageText = tf.add(infoNceLoss(imageA, textEmbeds, scale), infoNceLoss(imageB, textEmbeds, scale));
        return tf.add(tf.div(imageText, 2), tf.mul(infoNceLoss(imageA, imageB, scale), 0.5)) as tf.Scalar;
      }, true, variables)!,
    );
    if (step % 100 === 0 || step === options.steps - 1) {
      lastLoss = (await loss.data())[0]!;
      log(`step ${step} loss ${lastLoss.toFixed(3)} ${((performance.now() - started) / 1000).toFixed(0)}s`);
    }
    loss.dispose();
  }
  optimizer.dispose();
  const logitScale = Math.exp(logScale.dataSync()[0]!);
  logScale.dispose();
  return { image, text, steps: options.steps, lastLoss, seconds: (performance.now() - started) / 1000, logitScale };
}
