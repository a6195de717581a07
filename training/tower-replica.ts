import * as tf from "@tensorflow/tfjs";
import { infoNceLoss } from "./contrastive-loss.ts";
import { IMAGE_SIZE, ImageTower } from "./image-tower.ts";
import { TextTower } from "./text-tower.ts";
import { useTrainingBackend } from "./training-backend.ts";

/** One step's share of a batch: normalised pixels of two drawings per concept, and token weights. */
export type TowerBatch = { first: Float32Array; second: Float32Array; tokenWeights: Float32Array; rows: number };

/**
 * One copy of both towers with its optimiser. Data-parallel training runs
 * one replica per core: each computes gradients on its share of the batch,
 * the averaged gradients are applied to every replica, so they stay equal.
 */
export class TowerReplica {
  readonly image: ImageTower;
  readonly text: TextTower;
  readonly logScale: tf.Variable;
  private readonly optimizer: tf.AdamOptimizer;
  private readonly variables: tf.Variable[];

  private constructor(readonly vocabSize: number, seed: number, learningRate: number) {
    this.image = new ImageTower(seed);
    this.text = new TextTower(vocabSize, seed + 100);
    this.logScale = tf.variable(tf.scalar(Math.log(1 / 0.07)), true);
    this.optimizer = tf.train.adam(learningRate);
    this.variables = [...this.image.variables(), ...this.text.variables(), this.logScale];
  }

  static async create(vocabSize: number, seed: number, learningRate: number): Promise<TowerReplica> {
    await useTrainingBackend();
    return new TowerReplica(vocabSize, seed, learningRate);
  }

  /** InfoNCE image<->text for both drawings, plus half of InfoNCE between the two drawings. */
  private loss(batch: TowerBatch): tf.Scalar {
    const shape: [number, number, number, number] = [batch.rows, IMAGE_SIZE, IMAGE_SIZE, 3];
    const scale = tf.exp(tf.minimum(this.logScale, Math.log(100)));
    const imageA = this.image.embed(tf.tensor4d(batch.first, shape));
    const imageB = this.image.embed(tf.tensor4d(batch.second, shape));
    const textEmbeds = this.text.embed(tf.tensor2d(batch.tokenWeights, [batch.rows, this.vocabSize]));
    const imageText = tf.add(infoNceLoss(imageA, textEmbeds, scale), infoNceLoss(imageB, textEmbeds, scale));
    return tf.add(tf.div(imageText, 2), tf.mul(infoNceLoss(imageA, imageB, scale), 0.5)) as tf.Scalar;
  }

  gradients(batch: TowerBatch): { loss: number; gradients: Float32Array[] } {
    return tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => this.loss(batch), this.variables);
      return {
        loss: value.dataSync()[0]!,
        gradients: this.variables.map((variable) => (grads[variable.name]!.dataSync() as Float32Array).slice()),
      };
    });
  }

  apply(gradients: Float32Array[], learningRate: number): void {
    // tfjs keeps the rate in a protected field; a schedule needs to set it.
    (this.optimizer as unknown as { learningRate: number }).learningRate = learningRate;
    tf.tidy(() => {
      this.optimizer.applyGradients(this.variables.map((variable, i) => ({ name: variable.name, tensor: tf.tensor(gradients[i]!, variable.shape) })));
    });
  }

  weights(): Float32Array[] {
    return this.variables.map((variable) => (variable.dataSync() as Float32Array).slice());
  }

  setWeights(values: Float32Array[]): void {
    this.variables.forEach((variable, i) => variable.assign(tf.tensor(values[i]!, variable.shape)));
  }

  logitScale(): number {
    return Math.exp(this.logScale.dataSync()[0]!);
  }
}
