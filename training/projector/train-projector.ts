import fs from "node:fs/promises";
import path from "node:path";
import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs";
import { stringify } from "yaml";
import { z } from "zod";
import { ErrorCode, TesseraError } from "../../services/core/errors.ts";
import { ModelManifestSchema } from "../../services/worker/models/model-manifest.ts";
import { infoNceLoss } from "../contrastive-loss.ts";
import { useTrainingBackend } from "../training-backend.ts";
import { seededRandom } from "../seeded-random.ts";
import { PROJECTOR_INPUT, PROJECTOR_OUTPUT, ProjectorModel, type ProjectorKind } from "./projector-model.ts";

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
): Promise<{ model: ProjectorModel; report: ProjectorReport }> {
  const options = { ...DEFAULT_PROJECTOR_OPTIONS, ...given };
  checkPairs(pairs);
  await useTrainingBackend();
  const started = performance.now();
  const keys = [...new Set(pairs.map((pair) => pair.key))];
  const validationKeys = new Set(keys.length >= 20 ? keys.filter((key) => isValidationKey(key, options.validationShare)) : []);
  const train = pairs.filter((pair) => !validationKeys.has(pair.key));
  const validation = pairs.filter((pair) => validationKeys.has(pair.key));
  const inSize = pairs[0]!.from.length;
  const outSize = pairs[0]!.to.length;

  // Standardise inputs with the training pairs' statistics (baked into the export).
  const mean = new Float32Array(inSize);
  const std = new Float32Array(inSize);
  for (const pair of train) pair.from.forEach((value, d) => (mean[d]! += value / train.length));
  for (const pair of train) pair.from.forEach((value, d) => (std[d]! += (value - mean[d]!) ** 2 / train.length));
  std.forEach((variance, d) => (std[d] = Math.sqrt(variance) || 1));

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
  };
  if (validation.length > 0) Object.assign(report, measure(model, validation));
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
export async function writeProjector(model: ProjectorModel, report: ProjectorReport, target: ProjectorTarget) {
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
  const header = `# Written by \`tessera projector train\`: ${model.kind} projector, ${model.inSize} -> ${model.outSize}.\n# Validation: mean cosine ${report.validationMeanCosine.toFixed(3)}, recall@1 ${report.validationRecallAt1.toFixed(3)} over ${report.validationPairs} held-out pairs.\n`;
  await fs.writeFile(manifestPath, header + stringify(manifest));
  return { graphPath, manifestPath, manifest };
}
