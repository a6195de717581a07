/**
 * Real English sentences for realistic embeddings, with no download: the prose of the README files of the
 * installed packages (node_modules/* and node_modules/@scope/*), in a fixed order, so every run and every
 * machine with the same lockfile gets the same sentences; and vectors grown from their embeddings. Used by
 * `npm run bench -- ann` and the ANN index tests.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

function readmeFiles(): string[] {
  const modules = path.join(ROOT, "node_modules");
  const packageDirs: string[] = [];
  for (const entry of fs.readdirSync(modules).sort()) {
    if (entry.startsWith(".")) continue;
    if (entry.startsWith("@")) {
      for (const inner of fs.readdirSync(path.join(modules, entry)).sort()) packageDirs.push(path.join(modules, entry, inner));
    } else packageDirs.push(path.join(modules, entry));
  }
  const files: string[] = [];
  for (const dir of packageDirs) {
    const readme = ["README.md", "readme.md", "Readme.md"].map((name) => path.join(dir, name)).find((file) => fs.existsSync(file));
    if (readme) files.push(readme);
  }
  return files;
}

/** Markdown prose into sentences: code blocks, links, tables, headings and badges out; 6 to 40 words, mostly letters. */
function sentencesOf(markdown: string): string[] {
  const prose = markdown
    .replace(/```[\s\S]*?```/g, " ")
    .replace(/`[^`]*`/g, " ")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, " ")
    .split("\n")
    .filter((line) => !/^\s*(#|\||[-*]{3,}|>)/.test(line))
    .join(" ");
  return prose
    .split(/(?<=[.!?])\s+(?=[A-Z])/)
    .map((sentence) => sentence.replace(/\s+/g, " ").replace(/^[-*\d.)\s]+/, "").trim())
    .filter((sentence) => {
      const words = sentence.split(" ").length;
      const letters = sentence.replace(/[^A-Za-z ]/g, "").length;
      return words >= 6 && words <= 40 && /[.!?]$/.test(sentence) && letters / sentence.length > 0.85;
    });
}

/** `count` distinct sentences, in an order fixed by their hashes (not by package), so a prefix is a varied sample. */
export function realSentences(count: number): string[] {
  const seen = new Set<string>();
  for (const file of readmeFiles()) {
    for (const sentence of sentencesOf(fs.readFileSync(file, "utf8"))) seen.add(sentence);
  }
  const hash = (text: string) => createHash("sha1").update(text).digest("hex");
  const ordered = [...seen].sort((a, b) => (hash(a) < hash(b) ? -1 : 1));
  if (ordered.length < count) throw new Error(`only ${ordered.length} sentences in the installed packages' READMEs, ${count} asked`);
  return ordered.slice(0, count);
}

function seededUniform(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
}

/**
 * The real vectors first, then derived ones up to `total`, each normalise(0.75·a + 0.25·b + 0.01·g): a and b
 * real vectors picked at random (seeded), g a standard normal vector. Near-paraphrases and blends that keep the
 * real vectors' anisotropic distribution, unlike uniform random vectors (an ANN index's worst case).
 */
export function growVectors(real: Float32Array[], total: number, seed = 1): Float32Array[] {
  const uniform = seededUniform(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const dimensions = real[0]!.length;
  const vectors = [...real];
  while (vectors.length < total) {
    const a = real[Math.floor(uniform() * real.length)]!;
    const b = real[Math.floor(uniform() * real.length)]!;
    const vector = new Float32Array(dimensions);
    let norm = 0;
    for (let i = 0; i < dimensions; i++) {
      vector[i] = 0.75 * a[i]! + 0.25 * b[i]! + 0.01 * gauss();
      norm += vector[i]! * vector[i]!;
    }
    norm = Math.sqrt(norm);
    for (let i = 0; i < dimensions; i++) vector[i]! /= norm;
    vectors.push(vector);
  }
  return vectors;
}

/** Exact cosine top k (unit vectors: the dot product), as row numbers. */
export function exactTopK(vectors: Float32Array[], query: Float32Array, k = 10): number[] {
  const best: Array<[number, number]> = [];
  for (let row = 0; row < vectors.length; row++) {
    const vector = vectors[row]!;
    let dot = 0;
    for (let i = 0; i < query.length; i++) dot += vector[i]! * query[i]!;
    if (best.length < k || dot > best[best.length - 1]![1]) {
      best.push([row, dot]);
      best.sort((x, y) => y[1] - x[1]);
      if (best.length > k) best.pop();
    }
  }
  return best.map(([row]) => row);
}
