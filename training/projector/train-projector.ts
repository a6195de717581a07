import fs from "node:fs/promises";
import path from "node:path";
import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs";
import { stringify } from "yaml";
import { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { ModelManifestSchema } from "../../services/models/model-manifest.ts";
import { infoNceLoss } from "../contrastive-loss.ts";
import { useTrainingBackend } from "../training-backend.ts";
import { seededRandom } from "../seeded-random.ts";
import { PROJECTOR_INPUT, PROJECTOR_OUTPUT, ProjectorModel, PrototypeProjector, type ProjectorKind } from "./projector-model.ts";

/** What `writeProjector` needs of a trained projector, whatever its kind. */
export type TrainedProjector = { kind: ProjectorKind; inSize: number; outSize: number; toOnnx(): Uint8Array };

/** One line of a pairs file: a vector in the source space and its partner in the target space. */
const PairLine = z.object({
  from: z.array(z.number().finite()).min(1),
  to: z.array(z.number().finite()).min(1),
  /** Pairs with the same key show the same thing (several clips of one word); InfoNCE never uses them as each other's negatives. */
  key: z.string().optional(),
});
export type ProjectorPair = { from: Float32Array; to: Float32Array; key: string };

export type ProjectorOptions = {
  kind: ProjectorKind;
  loss: "infonce" | "mse-cosine";
  steps: number;
  batchSize: number;
  learningRate: number;
  hiddenSize: number;
  /** Share of keys kept out of training to measure the projector. */
  validationShare: number;
  seed: number;
  onProgress?: (step: number, loss: number) => void;
};

export const DEFAULT_PROJECTOR_OPTIONS: ProjectorOptions = {
  kind: "mlp",
  loss: "infonce",
  steps: 2000,
  batchSize: 256,
  learningRate: 1e-3,
  hiddenSize: 256,
  validationShare: 0.1,
  seed: 7,
};

export type ProjectorReport = {
  pairs: number;
  trainPairs: number;
  validationPairs: number;
  /** On the validation pairs: mean cosine to the partner, and how often the partner is the nearest of all validation targets. */
  validationMeanCosine: number;
  validationRecallAt1: number;
  finalLoss: number;
  seconds: number;
  /** How the validation figures were made: pairs of keys kept out of training, or (prototype kind) leave-one-out over all pairs. */
  validation: "held-out keys" | "leave-one-out";
  /** Prototype kind: the softmax sharpness chosen. */
  sharpness?: number;
};

/** Reads a JSONL pairs file; any bad line is a BAD_USER_INPUT naming the line, and nothing is trained. */
export async function readPairsFile(file: string): Promise<ProjectorPair[]> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch {
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, `cannot read pairs file ${file}`, { file });
  }
  const pairs: ProjectorPair[] = [];
  text.split("\n").forEach((line, index) => {
    if (!line.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new TesseraError(ErrorCode.BAD_USER_INPUT, `pairs file line ${index + 1} is not JSON`, { line: index + 1 });
    }
    const parsed = PairLine.safeParse(json);
    if (!parsed.success) {
      throw new TesseraError(ErrorCode.BAD_USER_INPUT, `pairs file line ${index + 1}: ${parsed.error.issues[0]?.message}`, {
        line: index + 1,
      });
    }
    pairs.push({ from: Float32Array.from(parsed.data.from), to: Float32Array.from(parsed.data.to), key: parsed.data.key ?? `line-${index + 1}` });
  });
  checkPairs(pairs);
  return pairs;
}

export function checkPairs(pairs: ProjectorPair[]): void {
  if (pairs.length < 8) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `need at least 8 pairs, got ${pairs.length}`);
  const fromSize = pairs[0]!.from.length;
  const toSize = pairs[0]!.to.length;
  pairs.forEach((pair, i) => {
    if (pair.from.length !== fromSize || pair.to.length !== toSize) {
      throw new TesseraError(
        ErrorCode.BAD_USER_INPUT,
        `pair ${i + 1} has sizes ${pair.from.length} -> ${pair.to.length}, the first has ${fromSize} -> ${toSize}`,
        { pair: i + 1 },
      );
    }
  });
}

function isValidationKey(key: string, share: number): boolean {
  return createHash("sha256").update(key).digest().readUInt32BE(0) / 2 ** 32 < share;
}

function stack(vectors: Float32Array[]): tf.Tensor2D {
  const size = vectors[0]!.length;
  const data = new Float32Array(vectors.length * size);
  vectors.forEach((vector, i) => data.set(vector, i * size));
  return tf.tensor2d(data, [vectors.length, size]);
}

/** Trains a projector on paired vectors with tfjs (wasm backend). */
export async function trainProjector(
  pairs: ProjectorPair[],
  given: Partial<ProjectorOptions> = {},
): Promise<{ model: TrainedProjector; report: ProjectorReport }> {
  const options = { ...DEFAULT_PROJECTOR_OPTIONS, ...given };
  checkPairs(pairs);
  await useTrainingBackend();
  const started = performance.now();
  if (options.kind === "prototype") return fitPrototypes(pairs, started);
  const keys = [...new Set(pairs.map((pair) => pair.key))];
  const validationKeys = new Set(keys.length >= 20 ? keys.filter((key) => isValidationKey(key, options.validationShare)) : []);
  const train = pairs.filter((pair) => !validationKeys.has(pair.key));
  const validation = pairs.filter((pair) => validationKeys.has(pair.key));
  const inSize = pairs[0]!.from.length;
  const outSize = pairs[0]!.to.length;

  // Standardise inputs with the training pairs' statistics (baked into the export).
  const { mean, std } = inputStatistics(train);

  const model = new ProjectorModel(options.kind, inSize, outSize, mean, std, options.hiddenSize, options.seed);
  const optimizer = tf.train.adam(options.learningRate);
  const logitScale = tf.scalar(1 / 0.05);
  const random = seededRandom(options.seed);
  const byKey = new Map<string, ProjectorPair[]>();
  for (const pair of train) byKey.set(pair.key, [...(byKey.get(pair.key) ?? []), pair]);
  const trainKeys = [...byKey.keys()];
  const batchSize = Math.min(options.batchSize, trainKeys.length);
  let finalLoss = Number.NaN;

  for (let step = 0; step < options.steps; step++) {
    // One pair per key in a batch, so no two rows are the same thing.
    const chosen = new Set<string>();
    while (chosen.size < batchSize) chosen.add(trainKeys[Math.floor(random() * trainKeys.length)]!);
    const batch = [...chosen].map((key) => {
      const group = byKey.get(key)!;
      return group[Math.floor(random() * group.length)]!;
    });
    const loss = tf.tidy(() => {
      const from = stack(batch.map((pair) => pair.from));
      const to = stack(batch.map((pair) => pair.to));
      return optimizer.minimize(() => {
        if (options.loss === "infonce") return infoNceLoss(model.project(from), tf.tidy(() => l2(to)), logitScale);
        const raw = model.raw(from);
        const mse = tf.losses.meanSquaredError(to, raw);
        const cosine = tf.mean(tf.sum(tf.mul(l2(raw), l2(to)), 1));
        return tf.add(mse, tf.sub(1, cosine)) as tf.Scalar;
      }, true)!;
    });
    if (step % 50 === 0 || step === options.steps - 1) {
      finalLoss = (await loss.data())[0]!;
      options.onProgress?.(step, finalLoss);
    }
    loss.dispose();
  }
  optimizer.dispose();
  logitScale.dispose();

  const report: ProjectorReport = {
    pairs: pairs.length,
    trainPairs: train.length,
    validationPairs: validation.length,
    validationMeanCosine: Number.NaN,
    validationRecallAt1: Number.NaN,
    finalLoss,
    seconds: (performance.now() - started) / 1000,
    validation: "held-out keys",
  };
  if (validation.length > 0) Object.assign(report, measure(model, validation));
  return { model, report };
}

/** Sharpness values the prototype projector chooses from, by leave-one-out on the training pairs. */
const SHARPNESS_CHOICES = [5, 10, 20, 40, 80, 160];

function unitMean(vectors: Float32Array[]): Float32Array {
  const out = new Float32Array(vectors[0]!.length);
  for (const vector of vectors) for (let d = 0; d < out.length; d++) out[d]! += vector[d]!;
  const norm = Math.hypot(...out) || 1;
  return out.map((value) => value / norm);
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let d = 0; d < a.length; d++) sum += a[d]! * b[d]!;
  return sum;
}

/** Per-dimension mean and standard deviation of the training inputs (a constant dimension gets 1), baked into the export. */
function inputStatistics(train: ProjectorPair[]) {
  const inSize = train[0]!.from.length;
  const mean = new Float32Array(inSize);
  const std = new Float32Array(inSize);
  for (const pair of train) pair.from.forEach((value, d) => (mean[d]! += value / train.length));
  for (const pair of train) pair.from.forEach((value, d) => (std[d]! += (value - mean[d]!) ** 2 / train.length));
  std.forEach((variance, d) => (std[d] = Math.sqrt(variance) || 1));
  return { mean, std };
}

/**
 * The prototype kind: one prototype and one target per key; its sharpness is
 * chosen by leave-one-out (each training pair is projected with its own key's
 * prototype rebuilt without it, as a new recording of a known key would be),
 * scoring how often the pair's own target is among the 10 key targets nearest
 * the output (mean cosine breaks ties).
 */
function fitPrototypes(train: ProjectorPair[], started: number) {
  const inSize = train[0]!.from.length;
  const outSize = train[0]!.to.length;
  const { mean, std } = inputStatistics(train);
  const empty = new PrototypeProjector(inSize, outSize, mean, std, new Float32Array(0), new Float32Array(0), 1);
  const prepared = train.map((pair) => empty.prepare(pair.from));
  const keys = [...new Set(train.map((pair) => pair.key))];
  const keyIndex = new Map(keys.map((key, i) => [key, i]));
  const sums = keys.map(() => new Float32Array(inSize));
  train.forEach((pair, i) => prepared[i]!.forEach((value, d) => (sums[keyIndex.get(pair.key)!]![d]! += value)));
  const prototypes = new Float32Array(keys.length * inSize);
  const targets = new Float32Array(keys.length * outSize);
  keys.forEach((key, k) => {
    prototypes.set(unitMean([sums[k]!]), k * inSize);
    targets.set(unitMean(train.filter((pair) => pair.key === key).map((pair) => Float32Array.from(pair.to))), k * outSize);
  });
  const counts = keys.map((key) => train.filter((pair) => pair.key === key).length);
  const candidate = new PrototypeProjector(inSize, outSize, mean, std, prototypes, targets, 1);
  // Leave-one-out similarities of pairs whose key has other pairs.
  const held = train.flatMap((pair, i) => (counts[keyIndex.get(pair.key)!]! > 1 ? [i] : []));
  const heldSimilarities = held.map((i) => {
    const similarities = candidate.similarities(prepared[i]!);
    const k = keyIndex.get(train[i]!.key)!;
    const without = sums[k]!.map((value, d) => value - prepared[i]![d]!);
    similarities[k] = dot(unitMean([without]), prepared[i]!);
    return similarities;
  });
  let sharpness = SHARPNESS_CHOICES[0]!;
  let best = -Infinity;
  // Score: how often the pair's own key target is among the 10 targets nearest the output (what retrieval needs), then mean cosine.
  let nearest = 0;
  const scoreOf = (choice: number) => {
    let found = 0;
    let first = 0;
    let cosine = 0;
    held.forEach((i, j) => {
      const output = candidate.combine(heldSimilarities[j]!, choice);
      const own = keyIndex.get(train[i]!.key)!;
      const ownScore = dot(output, targets.subarray(own * outSize, (own + 1) * outSize));
      let better = 0;
      for (let k = 0; k < keys.length && better < 10; k++) if (dot(output, targets.subarray(k * outSize, (k + 1) * outSize)) > ownScore) better++;
      if (better < 10) found++;
      if (better === 0) first++;
      cosine += dot(output, unitMean([train[i]!.to]));
    });
    const score = found / Math.max(1, held.length) + cosine / Math.max(1, held.length) / 1000;
    if (score > best) {
      nearest = first / Math.max(1, held.length);
      meanCosine = cosine / Math.max(1, held.length);
    }
    return score;
  };
  let meanCosine = 0;
  for (const choice of SHARPNESS_CHOICES) {
    const score = scoreOf(choice);
    if (score > best) {
      best = score;
      sharpness = choice;
    }
  }
  const model = new PrototypeProjector(inSize, outSize, mean, std, prototypes, targets, sharpness);
  // Validation is the leave-one-out at the chosen sharpness: every key keeps its prototype, so the model knows all of them.
  const report: ProjectorReport = {
    pairs: train.length,
    trainPairs: train.length,
    validationPairs: held.length,
    validationMeanCosine: meanCosine,
    validationRecallAt1: nearest,
    finalLoss: 1 - meanCosine,
    seconds: (performance.now() - started) / 1000,
    validation: "leave-one-out",
    sharpness,
  };
  return { model, report };
}

function l2(x: tf.Tensor): tf.Tensor2D {
  return tf.div(x, tf.maximum(tf.norm(x, "euclidean", -1, true), 1e-12)) as tf.Tensor2D;
}

function measure(model: ProjectorModel, pairs: ProjectorPair[]) {
  return tf.tidy(() => {
    const projected = model.project(stack(pairs.map((pair) => pair.from)));
    const targets = l2(stack(pairs.map((pair) => pair.to)));
    const similarity = tf.matMul(projected, targets, false, true);
    const best = similarity.argMax(1).dataSync();
    const own = tf.sum(tf.mul(projected, targets), 1).dataSync();
    let hits = 0;
    best.forEach((column, row) => {
      // A hit is any target with the same key (another clip of the same word counts).
      if (pairs[column]!.key === pairs[row]!.key) hits++;
    });
    return {
      validationMeanCosine: Array.from(own).reduce((a, b) => a + b, 0) / own.length,
      validationRecallAt1: hits / pairs.length,
    };
  });
}

export type ProjectorTarget = {
  /** Folder the projector is written into. */
  outDir: string;
  name: string;
  from: string;
  to: string;
  /** MODELS_DIR, so the manifest can name the graph relative to it. */
  modelsDir: string;
  description?: string;
  /** The model whose space the projector was trained to write into (`projector.for`). */
  forModel?: string;
};

/**
 * Writes projector.onnx and its model manifest (the models/*.yaml format,
 * checked against the runtime's schema first: an unknown space or a bad name
 * is a BAD_USER_INPUT and nothing is written); returns both paths.
 */
export async function writeProjector(model: TrainedProjector, report: ProjectorReport, target: ProjectorTarget) {
  const graphPath = path.join(target.outDir, "projector.onnx");
  const manifest = {
    name: target.name,
    description: target.description ?? `Projector from the ${target.from} space into the ${target.to} space`,
    task: "project",
    modality: target.from === "audio" ? "AUDIO" : target.from === "image-text" ? "IMAGE" : "TEXT",
    format: "onnx",
    adapter: "onnx-projector",
    files: { model: path.relative(target.modelsDir, graphPath) },
    inputs: { embeds: PROJECTOR_INPUT },
    outputs: { embeds: PROJECTOR_OUTPUT },
    output: { space: target.to, dimensions: model.outSize, normalize: true },
    projector: { from: [target.from], ...(target.forModel ? { for: target.forModel } : {}) },
  };
  const checked = ModelManifestSchema.safeParse(manifest);
  if (!checked.success) {
    const problems = checked.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new TesseraError(ErrorCode.BAD_USER_INPUT, `the projector's manifest would be invalid: ${problems.join("; ")}`, { problems });
  }
  await fs.mkdir(target.outDir, { recursive: true });
  await fs.writeFile(graphPath, model.toOnnx());
  const manifestPath = path.join(target.outDir, "manifest.yaml");
  const header = `# Written by \`tessera projector train\`: ${model.kind} projector, ${model.inSize} -> ${model.outSize}.\n# Validation: mean cosine ${report.validationMeanCosine.toFixed(3)}, recall@1 ${report.validationRecallAt1.toFixed(3)} ${report.validation === "leave-one-out" ? `leave-one-out over ${report.validationPairs} pairs` : `over ${report.validationPairs} held-out pairs`}.\n`;
  await fs.writeFile(manifestPath, header + stringify(manifest));
  return { graphPath, manifestPath, manifest };
}
