import * as tf from "@tensorflow/tfjs";
import { infoNceLoss } from "./contrastive-loss.ts";
import { IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD, ImageTower } from "./image-tower.ts";
import { seededRandom, shuffled } from "./seeded-random.ts";
import { TextTower } from "./text-tower.ts";
import { useTrainingBackend } from "./training-backend.ts";

export type TowerTrainingData = {
  /** Per training concept, per training style: rendered variants (RGB bytes); variant 0 is the clean drawing. */
  images: Uint8Array[][][];
  /** Per training concept: its texts as token ids (label, label + tags, tags, shortcodes). */
  texts: number[][][];
  vocabSize: number;
};

export type TowerTrainingOptions = {
  /** Wall-clock budget for the optimisation loop; the learning rate follows a cosine over it. */
  seconds: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  log?: (line: string) => void;
};

const PIXELS = IMAGE_SIZE * IMAGE_SIZE * 3;

/**
 * CLIP-style training from scratch: each step takes `batchSize` concepts,
 * one drawing in each of two styles (augmented) and one of its texts, and
 * minimises InfoNCE between image and text and between the two drawings (so
 * the image tower learns what stays the same across artists).
 */
export async function trainTowers(data: TowerTrainingData, options: TowerTrainingOptions) {
  await useTrainingBackend();
  const log = options.log ?? (() => {});
  const random = seededRandom(options.seed);
  const image = new ImageTower(options.seed);
  const text = new TextTower(data.vocabSize, options.seed + 100);
  const logScale = tf.variable(tf.scalar(Math.log(1 / 0.07)), true);
  const optimizer = tf.train.adam(options.learningRate);
  const conceptCount = data.images.length;
  const batchSize = Math.min(options.batchSize, conceptCount);
  let order: number[] = [];
  const started = performance.now();
  let step = 0;
  let lastLoss = Number.NaN;

  const pixelBatch = (rows: Uint8Array[]) => {
    const values = new Float32Array(rows.length * PIXELS);
    rows.forEach((pixels, r) => {
      for (let i = 0; i < PIXELS; i++) values[r * PIXELS + i] = (pixels[i]! / 255 - IMAGE_MEAN[i % 3]!) / IMAGE_STD[i % 3]!;
    });
    return tf.tensor4d(values, [rows.length, IMAGE_SIZE, IMAGE_SIZE, 3]);
  };
  const pickVariant = (variants: Uint8Array[]) => (random() < 0.25 ? variants[0]! : variants[1 + Math.floor(random() * (variants.length - 1))]!);

  while ((performance.now() - started) / 1000 < options.seconds) {
    if (order.length < batchSize) order = [...order, ...shuffled([...Array(conceptCount).keys()], random)];
    const batch = order.splice(0, batchSize);
    const first: Uint8Array[] = [];
    const second: Uint8Array[] = [];
    const weights = new Float32Array(batch.length * data.vocabSize);
    batch.forEach((concept, row) => {
      const styles = data.images[concept]!;
      const a = Math.floor(random() * styles.length);
      const b = styles.length > 1 ? 1 - a : a;
      first.push(pickVariant(styles[a]!));
      second.push(pickVariant(styles[b]!));
      const texts = data.texts[concept]!;
      // The plain label is the query users type most: give it half the draws.
      const tokens = random() < 0.5 ? texts[0]! : texts[Math.floor(random() * texts.length)]!;
      for (const id of tokens) weights[row * data.vocabSize + id]! += 1 / tokens.length;
    });
    const progress = (performance.now() - started) / 1000 / options.seconds;
    const warmup = Math.min(1, (step + 1) / 30);
    // tfjs keeps the rate in a protected field; a cosine schedule over the time budget needs to set it.
    (optimizer as unknown as { learningRate: number }).learningRate =
      options.learningRate * warmup * (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
    const loss = tf.tidy(() => {
      const firstPixels = pixelBatch(first);
      const secondPixels = pixelBatch(second);
      const tokenWeights = tf.tensor2d(weights, [batch.length, data.vocabSize]);
      return optimizer.minimize(() => {
        const scale = tf.exp(tf.minimum(logScale, Math.log(100)));
        const imageA = image.embed(firstPixels);
        const imageB = image.embed(secondPixels);
        const textEmbeds = text.embed(tokenWeights);
        const imageText = tf.add(infoNceLoss(imageA, textEmbeds, scale), infoNceLoss(imageB, textEmbeds, scale));
        return tf.add(tf.div(imageText, 2), tf.mul(infoNceLoss(imageA, imageB, scale), 0.5)) as tf.Scalar;
      }, true)!;
    });
    if (step % 25 === 0) {
      lastLoss = (await loss.data())[0]!;
      log(`step ${step} loss ${lastLoss.toFixed(3)} scale ${Math.exp(logScale.dataSync()[0]!).toFixed(1)} ${((performance.now() - started) / 1000).toFixed(0)}s`);
    }
    loss.dispose();
    step++;
  }
  optimizer.dispose();
  return { image, text, steps: step, lastLoss, seconds: (performance.now() - started) / 1000, logitScale: Math.exp(logScale.dataSync()[0]!) };
}
