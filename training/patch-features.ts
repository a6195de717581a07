import * as ort from "onnxruntime-node";
import { FLOAT, OnnxGraph } from "./onnx-graph.ts";

/**
 * A fixed convolutional front end for the image tower, after Coates, Lee & Ng
 * (2011), "An analysis of single-layer networks in unsupervised feature
 * learning": every `patch` x `patch` RGB patch is brightness/contrast
 * normalised and ZCA-whitened, compared with a dictionary of filters learned
 * by k-means on patches of the training drawings, soft-thresholded
 * (max(0, d.z - alpha)), then pooled (mean over a grid of cells, and max over
 * the whole picture). Coarse colour (the mean colour of 8x8 cells) is added.
 *
 * Nothing here is trained by gradient descent: the dictionary is learned once,
 * so the features of every training drawing can be computed once with
 * onnxruntime, and only the small heads above them train in tfjs.
 *
 * In the ONNX graph the normalisation and whitening fold into the filters:
 * d.W((p - m)/s - mu) = (Wd - mean(Wd)) . p / s - d.W mu, so the encoder is one
 * Conv, a per-position divide by s = sqrt(var(p) + eps), a bias and a Relu.
 */
export type PatchFrontEndSpec = {
  /** Input side in pixels (square). */
  size: number;
  /** Filter side in pixels. */
  patch: number;
  /** Number of filters (the dictionary size). */
  filters: number;
  /** Grids the responses are mean-pooled over, e.g. [2, 3]: 2x2 and 3x3 cells. */
  grids: number[];
  /** Soft threshold of the encoder. */
  alpha: number;
  /** Side of the cells of the coarse colour features (mean pixel per cell). */
  colourCell: number;
};

/** The learned parts: folded filters [K, 3, P, P] and biases [K]. */
export type PatchFrontEnd = { spec: PatchFrontEndSpec; weights: Float32Array; bias: Float32Array };

/** Brightness/contrast normalisation of a patch: (p - mean) / sqrt(var + eps); eps keeps flat background at ~0. */
const CONTRAST_EPS = 0.01;
/** ZCA regulariser on the eigenvalues of normalised patches (Coates et al. use 0.1). */
const ZCA_EPS = 0.1;

export function featureSize(spec: PatchFrontEndSpec): number {
  const cells = spec.grids.reduce((sum, grid) => sum + grid * grid, 0);
  const colour = 3 * (spec.size / spec.colourCell) ** 2;
  return spec.filters * (cells + 1) + colour;
}

/** Symmetric eigen-decomposition (cyclic Jacobi): returns eigenvalues and eigenvectors as columns of a row-major n x n. */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off < 1e-18) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-15) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i]!;
  return { values, vectors: v };
}

/**
 * Learns the dictionary: samples patches (with some contrast: flat background
 * says nothing) from normalised NCHW pictures, normalises and whitens them,
 * runs spherical k-means, and folds normalisation and whitening into the filters.
 */
export function learnPatchFrontEnd(
  pictureCount: number,
  picture: (index: number) => Float32Array,
  spec: PatchFrontEndSpec,
  random: () => number,
  options: { patches?: number; iterations?: number; log?: (line: string) => void } = {},
): PatchFrontEnd {
  const { size, patch: P, filters: K } = spec;
  const n = 3 * P * P;
  const wanted = options.patches ?? 60_000;
  const plane = size * size;
  const samples: Float64Array[] = [];
  let tries = 0;
  while (samples.length < wanted && tries < wanted * 20) {
    tries++;
    const pixels = picture(Math.floor(random() * pictureCount));
    const y = Math.floor(random() * (size - P + 1));
    const x = Math.floor(random() * (size - P + 1));
    const values = new Float64Array(n);
    let mean = 0;
    for (let c = 0; c < 3; c++) {
      for (let dy = 0; dy < P; dy++) {
        for (let dx = 0; dx < P; dx++) {
          const value = pixels[c * plane + (y + dy) * size + x + dx]!;
          values[(c * P + dy) * P + dx] = value;
          mean += value / n;
        }
      }
    }
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (values[i]! - mean) ** 2 / n;
    if (variance < 0.05) continue;
    const scale = 1 / Math.sqrt(variance + CONTRAST_EPS);
    for (let i = 0; i < n; i++) values[i] = (values[i]! - mean) * scale;
    samples.push(values);
  }
  // ZCA: W = V diag(1 / sqrt(lambda + eps)) V^T on the normalised patches.
  const mu = new Float64Array(n);
  for (const sample of samples) for (let i = 0; i < n; i++) mu[i]! += sample[i]! / samples.length;
  const covariance = new Float64Array(n * n);
  const centred = new Float64Array(n);
  for (const sample of samples) {
    for (let i = 0; i < n; i++) centred[i] = sample[i]! - mu[i]!;
    for (let i = 0; i < n; i++) {
      const ci = centred[i]!;
      for (let j = i; j < n; j++) covariance[i * n + j]! += ci * centred[j]!;
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      covariance[i * n + j]! /= samples.length;
      covariance[j * n + i] = covariance[i * n + j]!;
    }
  }
  const { values: lambda, vectors: V } = symmetricEigen(covariance, n);
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += (V[i * n + k]! * V[j * n + k]!) / Math.sqrt(Math.max(0, lambda[k]!) + ZCA_EPS);
      W[i * n + j] = sum;
    }
  }
  const whitened = samples.map((sample) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += W[i * n + j]! * (sample[j]! - mu[j]!);
      out[i] = sum;
    }
    return out;
  });
  options.log?.(`patch front end: ${samples.length} patches whitened`);

  // Spherical k-means (Coates & Ng): unit-length centroids, each patch added to its best match scaled by the match.
  const D = new Float32Array(K * n);
  for (let k = 0; k < K; k++) {
    let norm = 0;
    for (let i = 0; i < n; i++) norm += (D[k * n + i] = gaussian(random)) ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; i++) D[k * n + i]! /= norm;
  }
  const iterations = options.iterations ?? 10;
  for (let iteration = 0; iteration < iterations; iteration++) {
    const sums = new Float32Array(K * n);
    const counts = new Uint32Array(K);
    for (const z of whitened) {
      let best = 0;
      let bestValue = -Infinity;
      for (let k = 0; k < K; k++) {
        let dot = 0;
        const base = k * n;
        for (let i = 0; i < n; i++) dot += D[base + i]! * z[i]!;
        if (Math.abs(dot) > bestValue) {
          bestValue = Math.abs(dot);
          best = k;
        }
      }
      let dot = 0;
      for (let i = 0; i < n; i++) dot += D[best * n + i]! * z[i]!;
      for (let i = 0; i < n; i++) sums[best * n + i]! += dot * z[i]!;
      counts[best]!++;
    }
    for (let k = 0; k < K; k++) {
      let norm = 0;
      for (let i = 0; i < n; i++) norm += sums[k * n + i]! ** 2;
      norm = Math.sqrt(norm);
      if (counts[k] === 0 || norm === 0) {
        // An empty cluster restarts on a random patch.
        const z = whitened[Math.floor(random() * whitened.length)]!;
        let zNorm = 0;
        for (let i = 0; i < n; i++) zNorm += z[i]! ** 2;
        for (let i = 0; i < n; i++) D[k * n + i] = z[i]! / Math.sqrt(zNorm || 1);
      } else {
        for (let i = 0; i < n; i++) D[k * n + i] = sums[k * n + i]! / norm;
      }
    }
    options.log?.(`patch front end: k-means iteration ${iteration + 1}/${iterations}`);
  }

  // Fold: g_k = W d_k, filter = g_k - mean(g_k) (subtracts the patch mean), bias = g_k . mu + alpha.
  const weights = new Float32Array(K * n);
  const bias = new Float32Array(K);
  for (let k = 0; k < K; k++) {
    const g = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += W[i * n + j]! * D[k * n + j]!;
      g[i] = sum;
    }
    let mean = 0;
    for (let i = 0; i < n; i++) mean += g[i]! / n;
    let offset = 0;
    for (let i = 0; i < n; i++) {
      weights[k * n + i] = g[i]! - mean;
      offset += g[i]! * mu[i]!;
    }
    bias[k] = offset + spec.alpha;
  }
  return { spec, weights, bias };
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/**
 * Adds the front end to a graph: `input` is pixel_values [B, 3, S, S];
 * returns the name of the feature matrix [B, featureSize(spec)].
 */
export function addPatchFrontEnd(graph: OnnxGraph, input: string, frontEnd: PatchFrontEnd): string {
  const { size, patch: P, filters: K, grids, colourCell } = frontEnd.spec;
  const n = 3 * P * P;
  // Edge padding keeps the response map at S x S without inventing borders.
  const before = Math.floor((P - 1) / 2);
  const after = P - 1 - before;
  const padded = graph.op("Pad", [input, graph.int64s([0, 0, before, before, 0, 0, after, after], "pads")], { mode: "edge" });
  const filters = graph.floats([K, 3, P, P], frontEnd.weights, "patch_filters");
  const response = graph.op("Conv", [padded, filters], { kernel_shape: [P, P] });
  // s = sqrt(E[p^2] - E[p]^2 + eps) per position, from two one-channel convolutions.
  const averager = graph.floats([1, 3, P, P], new Float32Array(n).fill(1 / n), "patch_mean");
  const mean = graph.op("Conv", [padded, averager], { kernel_shape: [P, P] });
  const meanSquare = graph.op("Conv", [graph.op("Mul", [padded, padded]), averager], { kernel_shape: [P, P] });
  const variance = graph.op("Max", [graph.op("Sub", [meanSquare, graph.op("Mul", [mean, mean])]), graph.floats([1], [0], "zero")]);
  const scale = graph.op("Sqrt", [graph.op("Add", [variance, graph.floats([1], [CONTRAST_EPS], "contrast_eps")])]);
  const encoded = graph.op("Relu", [graph.op("Sub", [graph.op("Div", [response, scale]), graph.floats([1, K, 1, 1], frontEnd.bias, "patch_bias")])]);
  const parts: string[] = [];
  for (const grid of grids) {
    const cell = size / grid;
    const pooled = graph.op("AveragePool", [encoded], { kernel_shape: [cell, cell], strides: [cell, cell] });
    parts.push(graph.op("Reshape", [pooled, graph.int64s([0, -1])]));
  }
  parts.push(graph.op("Reshape", [graph.op("GlobalMaxPool", [encoded]), graph.int64s([0, -1])]));
  const colour = graph.op("AveragePool", [input], { kernel_shape: [colourCell, colourCell], strides: [colourCell, colourCell] });
  parts.push(graph.op("Reshape", [colour, graph.int64s([0, -1])]));
  return graph.op("Concat", parts, { axis: 1 });
}

/** The front end alone as a model (pixel_values -> features), to compute training features with onnxruntime. */
export function patchFeatureModel(frontEnd: PatchFrontEnd): Uint8Array {
  const graph = new OnnxGraph("patch_features");
  const input = graph.input("pixel_values", FLOAT, ["batch_size", 3, frontEnd.spec.size, frontEnd.spec.size]);
  graph.op("Identity", [addPatchFrontEnd(graph, input, frontEnd)], {}, "features");
  graph.output("features", FLOAT, ["batch_size", featureSize(frontEnd.spec)]);
  return graph.encode();
}

/** Computes front-end features of normalised NCHW pictures with onnxruntime-node (both cores). */
export async function computePatchFeatures(
  frontEnd: PatchFrontEnd,
  pictureCount: number,
  picture: (index: number) => Float32Array,
  batchSize = 128,
): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(patchFeatureModel(frontEnd), { intraOpNumThreads: 2, graphOptimizationLevel: "all" });
  const { size } = frontEnd.spec;
  const dims = featureSize(frontEnd.spec);
  const out: Float32Array[] = [];
  try {
    for (let i = 0; i < pictureCount; i += batchSize) {
      const count = Math.min(batchSize, pictureCount - i);
      const input = new Float32Array(count * 3 * size * size);
      for (let j = 0; j < count; j++) input.set(picture(i + j), j * 3 * size * size);
      const result = await session.run({ pixel_values: new ort.Tensor("float32", input, [count, 3, size, size]) });
      const data = result.features!.data as Float32Array;
      for (let j = 0; j < count; j++) out.push(data.slice(j * dims, (j + 1) * dims));
    }
  } finally {
    await session.release();
  }
  return out;
}
