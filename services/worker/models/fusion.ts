import { normalize } from "./vector-math.ts";

/**
 * Late fusion: vectors of one space (an image's frames, a text's chunks, an
 * image and its OCR text) are each L2-normalised, weighted, summed and
 * normalised again. Weights need not sum to 1; a weight of 0 drops a part.
 */
export function fuseVectors(parts: Array<{ vector: Float32Array; weight?: number }>): Float32Array {
  const used = parts.filter((part) => (part.weight ?? 1) > 0);
  if (used.length === 0) throw new Error("nothing to fuse: every weight is 0");
  const dims = used[0]!.vector.length;
  const out = new Float32Array(dims);
  for (const { vector, weight = 1 } of used) {
    if (vector.length !== dims) throw new Error(`cannot fuse vectors of ${dims} and ${vector.length} dimensions`);
    const unit = normalize(Float32Array.from(vector));
    for (let i = 0; i < dims; i++) out[i]! += weight * unit[i]!;
  }
  return normalize(out);
}

/** Per-modality (or per-space) weights; a request or workflow step overrides the defaults it names. */
export type FusionWeights = Record<string, number>;

export const DEFAULT_FUSION_WEIGHTS: FusionWeights = { "image-text": 1, sentence: 1, audio: 1 };

export function resolveFusionWeights(overrides: FusionWeights = {}, defaults: FusionWeights = DEFAULT_FUSION_WEIGHTS): FusionWeights {
  for (const [key, weight] of Object.entries(overrides)) {
    if (!Number.isFinite(weight) || weight < 0) throw new Error(`fusion weight for ${key} must be a number >= 0, got ${weight}`);
  }
  return { ...defaults, ...overrides };
}

/**
 * Late fusion of scores across spaces: one hit's cosine similarity in each
 * space it was found in, combined as a weighted mean of the spaces present.
 */
export function fuseScores(scores: Record<string, number>, weights: FusionWeights = DEFAULT_FUSION_WEIGHTS): number {
  let total = 0;
  let weightSum = 0;
  for (const [space, score] of Object.entries(scores)) {
    const weight = weights[space] ?? 1;
    total += weight * score;
    weightSum += weight;
  }
  return weightSum > 0 ? total / weightSum : 0;
}
