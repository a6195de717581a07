import { Worker } from "node:worker_threads";
import { IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD } from "./image-tower.ts";
import { seededRandom, shuffled } from "./seeded-random.ts";
import { TowerReplica, type TowerBatch } from "./tower-replica.ts";

export type TowerTrainingData = {
  /** Per training concept, per training style: rendered variants (RGB bytes); variant 0 is the clean drawing. */
  images: Uint8Array[][][];
  /** Per training concept: its texts as token ids; the first is the plain label. */
  texts: number[][][];
  vocabSize: number;
};

export type TowerTrainingOptions = {
  /** Wall-clock budget for the optimisation loop; the learning rate follows a cosine over it. */
  seconds: number;
  /** Concepts per step, split across the workers. */
  batchSize: number;
  learningRate: number;
  /** Replicas: 1 trains in this thread; more run data-parallel on worker threads, one per core (tfjs' wasm backend runs one thread each). */
  workers: number;
  seed: number;
  log?: (line: string) => void;
};

const PIXELS = IMAGE_SIZE * IMAGE_SIZE * 3;

/** Gradients for a share of the batch, steps with averaged gradients, and the final weights. */
type Replica = {
  gradients(batch: TowerBatch): Promise<{ loss: number; gradients: Float32Array[] }>;
  apply(gradients: Float32Array[], learningRate: number): void;
  weights(): Promise<{ weights: Float32Array[]; logitScale: number }>;
  close(): Promise<void>;
};

/** With one replica there is nothing to exchange: it runs in this thread. */
async function localReplica(vocabSize: number, seed: number, learningRate: number): Promise<Replica> {
  const replica = await TowerReplica.create(vocabSize, seed, learningRate);
  return {
    gradients: async (batch) => replica.gradients(batch),
    apply: (gradients, rate) => replica.apply(gradients, rate),
    weights: async () => ({ weights: replica.weights(), logitScale: replica.logitScale() }),
    close: async () => {},
  };
}

async function threadReplica(vocabSize: number, seed: number, learningRate: number): Promise<Replica> {
  // Worker threads do not inherit tsx's loader: register it in the thread, then load the TypeScript worker.
  const script = new URL("./tower-worker.ts", import.meta.url).href;
  const bootstrap = `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(script)}); });`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { vocabSize, seed, learningRate } });
  const waiting: Array<(value: unknown) => void> = [];
  worker.on("message", (message) => waiting.shift()?.(message));
  worker.on("error", (error) => {
    throw error;
  });
  const next = () => new Promise<unknown>((resolve) => waiting.push(resolve));
  await next();
  return {
    gradients(batch) {
      const answer = next();
      worker.postMessage({ type: "gradients", batch }, [batch.first.buffer, batch.second.buffer, batch.tokenWeights.buffer] as ArrayBuffer[]);
      return answer as Promise<{ loss: number; gradients: Float32Array[] }>;
    },
    apply: (gradients, rate) => worker.postMessage({ type: "apply", gradients, learningRate: rate }),
    weights() {
      const answer = next();
      worker.postMessage({ type: "weights" });
      return answer as Promise<{ weights: Float32Array[]; logitScale: number }>;
    },
    close: async () => void (await worker.terminate()),
  };
}

/**
 * CLIP-style training from scratch: each step takes `batchSize` concepts,
 * one drawing in each of two styles (augmented) and one of their texts, and
 * minimises InfoNCE between image and text and between the two drawings (so
 * the image tower learns what stays the same across artists). The batch is
 * split across worker-thread replicas (data parallel); their gradients are
 * averaged, so every replica takes the same step.
 */
export async function trainTowers(data: TowerTrainingData, options: TowerTrainingOptions) {
  const log = options.log ?? (() => {});
  const random = seededRandom(options.seed);
  const startReplica = options.workers > 1 ? threadReplica : localReplica;
  const replicas = await Promise.all(
    Array.from({ length: options.workers }, () => startReplica(data.vocabSize, options.seed, options.learningRate)),
  );
  const conceptCount = data.images.length;
  const batchSize = Math.min(options.batchSize, conceptCount);
  let order: number[] = [];
  const started = performance.now();
  let step = 0;
  let lastLoss = Number.NaN;

  const pickVariant = (variants: Uint8Array[]) => (random() < 0.25 ? variants[0]! : variants[1 + Math.floor(random() * (variants.length - 1))]!);
  const normalise = (pixels: Uint8Array, out: Float32Array, row: number) => {
    for (let i = 0; i < PIXELS; i++) out[row * PIXELS + i] = (pixels[i]! / 255 - IMAGE_MEAN[i % 3]!) / IMAGE_STD[i % 3]!;
  };
  const makeBatch = (concepts: number[]): TowerBatch => {
    const batch: TowerBatch = {
      first: new Float32Array(concepts.length * PIXELS),
      second: new Float32Array(concepts.length * PIXELS),
      tokenWeights: new Float32Array(concepts.length * data.vocabSize),
      rows: concepts.length,
    };
    concepts.forEach((concept, row) => {
      const styles = data.images[concept]!;
      const a = Math.floor(random() * styles.length);
      const b = styles.length > 1 ? 1 - a : a;
      normalise(pickVariant(styles[a]!), batch.first, row);
      normalise(pickVariant(styles[b]!), batch.second, row);
      const texts = data.texts[concept]!;
      // The plain label is the query users type most: give it half the draws.
      const tokens = random() < 0.5 ? texts[0]! : texts[Math.floor(random() * texts.length)]!;
      for (const id of tokens) batch.tokenWeights[row * data.vocabSize + id]! += 1 / tokens.length;
    });
    return batch;
  };

  try {
    while ((performance.now() - started) / 1000 < options.seconds) {
      if (order.length < batchSize) order = [...order, ...shuffled([...Array(conceptCount).keys()], random)];
      const concepts = order.splice(0, batchSize);
      const share = Math.ceil(concepts.length / replicas.length);
      const results = await Promise.all(replicas.map((replica, i) => replica.gradients(makeBatch(concepts.slice(i * share, (i + 1) * share)))));
      const averaged = results.length === 1 ? results[0]!.gradients : results[0]!.gradients.map((gradient, v) => {
        const sum = new Float32Array(gradient.length);
        for (const result of results) {
          const part = result.gradients[v]!;
          for (let i = 0; i < sum.length; i++) sum[i]! += part[i]! / results.length;
        }
        return sum;
      });
      const progress = Math.min(1, (performance.now() - started) / 1000 / options.seconds);
      const warmup = Math.min(1, (step + 1) / 30);
      const learningRate = options.learningRate * warmup * (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * progress)));
      for (const replica of replicas) replica.apply(averaged, learningRate);
      lastLoss = results.reduce((sum, result) => sum + result.loss, 0) / results.length;
      if (step % 25 === 0) log(`step ${step} loss ${lastLoss.toFixed(3)} lr ${learningRate.toExponential(1)} ${((performance.now() - started) / 1000).toFixed(0)}s`);
      step++;
    }
    const { weights, logitScale } = await replicas[0]!.weights();
    const towers = await TowerReplica.create(data.vocabSize, options.seed, options.learningRate);
    towers.setWeights(weights);
    return { image: towers.image, text: towers.text, steps: step, lastLoss, seconds: (performance.now() - started) / 1000, logitScale };
  } finally {
    await Promise.all(replicas.map((replica) => replica.close()));
  }
}
