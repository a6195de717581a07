/**
 * `tsx training/text-proxy.ts`: the quick check used for issue #21's text tower. It trains as train-demo does
 * (same seed, data, front end; the drawings' features cached in /tmp), for fewer steps (PROXY_STEPS), with the
 * word vectors PROXY_WORD_VECTORS (learned | use), PROXY_WORD_VECTOR_SIZE principal components,
 * PROXY_LEARNED_WORD_VECTOR_SIZE learned dimensions beside them, PROXY_VOCABULARY (training | union: the training
 * texts' words and USE-lite's own English words), and measures labels -> OpenMoji drawings in tfjs, as the model
 * card's figures measure the export. A comparison between settings, not a replacement for a full run.
 */
import fs from "node:fs/promises";
import path from "node:path";
import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { conceptTexts } from "./concept-texts.ts";
import { loadEmojiConcepts, loadIconSet, TRAIN_STYLES } from "./emoji-concepts.ts";
import { standardiseFeatures } from "./feature-statistics.ts";
import { renderAugmentedIcon, renderIconPixels } from "./icon-renderer.ts";
import { FRONT_END_SPEC, IMAGE_SIZE, normalisePixels } from "./image-tower.ts";
import { computePatchFeatures, featureSize, learnPatchFrontEnd, type PatchFrontEnd } from "./patch-features.ts";
import { seededRandom } from "./seeded-random.ts";
import { buildVocabulary, writeTokenizerFiles } from "./text-tokenizer.ts";
import { trainTowers } from "./train-towers.ts";
import { recallAtK } from "./retrieval-metrics.ts";
import type { FixedWordVectors } from "./text-tower.ts";
import { fixedWordVectors, useLiteRows, withUseLiteWords } from "./use-word-vectors.ts";
const E = (k: string, d: string) => process.env[`PROXY_${k}`] ?? d;
const STEPS = Number(E("STEPS", "400"));
const WV = E("WORD_VECTORS", "learned");
const PCA = Number(E("WORD_VECTOR_SIZE", "128"));
const LEARNED = Number(E("LEARNED_WORD_VECTOR_SIZE", "0"));
const VOCAB = E("VOCABULARY", "training");
const started = performance.now();
const log = (l: string) => console.error(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${l}`);
const concepts = loadEmojiConcepts();
const train = concepts.filter((c) => c.split === "train");
const seed = 20261126, variants = 6;
const random = seededRandom(seed);
const texts = train.map((c) => conceptTexts(c, random));
const spec = FRONT_END_SPEC;
const F = featureSize(spec);
const cache = path.join(os.tmpdir(), "tessera-text-proxy-features.bin");
const sets = TRAIN_STYLES.map(loadIconSet);
const perConcept = sets.length * (1 + variants);
let frontEnd: PatchFrontEnd, raw: Float32Array[], openmoji: Float32Array[];
const n = 3 * spec.patch * spec.patch;
try {
  const b = await fs.readFile(cache);
  const v = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  frontEnd = { spec, weights: v.slice(0, spec.filters * n), bias: v.slice(spec.filters * n, spec.filters * (n + 1)) };
  const rest = v.subarray(spec.filters * (n + 1));
  const all = Array.from({ length: rest.length / F }, (_, i) => rest.slice(i * F, (i + 1) * F));
  raw = all.slice(0, train.length * perConcept); openmoji = all.slice(train.length * perConcept);
  log("cache");
} catch {
  const px = IMAGE_SIZE * IMAGE_SIZE * 3;
  const renders = new Uint8Array(train.length * perConcept * px);
  let r = 0;
  for (const c of train) for (const set of sets) { renders.set(await renderIconPixels(set, c.name, IMAGE_SIZE), r++ * px); for (let v = 0; v < variants; v++) renders.set(await renderAugmentedIcon(set, c.name, IMAGE_SIZE, random), r++ * px); }
  const picture = (i: number) => normalisePixels(renders.subarray(i * px, (i + 1) * px));
  frontEnd = learnPatchFrontEnd(r, picture, spec, random, { log });
  raw = await computePatchFeatures(frontEnd, r, picture);
  const om = loadIconSet("openmoji");
  const omPx: Uint8Array[] = []; for (const c of concepts) omPx.push(await renderIconPixels(om, c.name, IMAGE_SIZE));
  openmoji = await computePatchFeatures(frontEnd, concepts.length, (i) => normalisePixels(omPx[i]!));
  const out = new Float32Array(frontEnd.weights.length + frontEnd.bias.length + (raw.length + openmoji.length) * F);
  out.set(frontEnd.weights); out.set(frontEnd.bias, frontEnd.weights.length);
  [...raw, ...openmoji].forEach((row, i) => out.set(row, frontEnd.weights.length + frontEnd.bias.length + i * F));
  await fs.writeFile(cache, out);
  log("features computed");
}
const { mean, std } = standardiseFeatures(raw);
for (const row of openmoji) for (let i = 0; i < F; i++) row[i] = (row[i]! - mean[i]!) / std[i]!;
const features = train.map((_, c) => sets.map((_, s) => raw.slice((c * sets.length + s) * (1 + variants), (c * sets.length + s + 1) * (1 + variants))));
// vocabulary + word vectors
let vocabulary = buildVocabulary(texts.flat());
if (VOCAB === "union") vocabulary = await withUseLiteWords(vocabulary);
let wordVectors: FixedWordVectors | undefined;
if (WV === "use") {
  // USE-lite's vectors of these words, cached per vocabulary size (the vocabulary is fixed by the settings above).
  const useCache = `/tmp/tessera-text-proxy-use-${vocabulary.length}.bin`;
  let rows: Float32Array;
  try {
    const b = await fs.readFile(useCache);
    rows = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  } catch {
    rows = await useLiteRows(vocabulary, log);
    await fs.writeFile(useCache, rows);
  }
  wordVectors = fixedWordVectors(rows, PCA, LEARNED);
  log("word vectors ready");
}
const dir = await fs.mkdtemp(path.join(os.tmpdir(), "t21-joint-"));
await fs.mkdir(path.join(dir, "tok"));
await writeTokenizerFiles(path.join(dir, "tok"), vocabulary);
env.allowRemoteModels = false; env.localModelPath = dir + "/";
const tokenizer = await AutoTokenizer.from_pretrained("tok", { local_files_only: true });
const tokenIds = texts.map((l) => l.map((t) => tokenizer.encode(t)));
log(`vocab ${vocabulary.length}`);
const towers = await trainTowers({ frontEnd, featureMean: mean, featureStd: std, features, texts: tokenIds, vocabSize: vocabulary.length, wordVectors }, { steps: STEPS, batchSize: 256, learningRate: 2e-3, featureDropout: 0.2, seed, log });
const V = vocabulary.length;
const embedLabels = (labels: string[]) => tf.tidy(() => { const w = new Float32Array(labels.length * V); labels.forEach((l, r) => { const ids = tokenizer.encode(l); for (const id of ids) w[r * V + id]! += 1 / ids.length; }); return towers.text.embed(tf.tensor2d(w, [labels.length, V])).arraySync(); }).map((r) => Float32Array.from(r));
const embedImg = (rows: Float32Array[]) => tf.tidy(() => { const d = new Float32Array(rows.length * F); rows.forEach((r, i) => d.set(r, i * F)); return towers.image.embed(tf.tensor2d(d, [rows.length, F])).arraySync(); }).map((r) => Float32Array.from(r));
const om = embedImg(openmoji);
const lab = embedLabels(concepts.map((c) => c.label));
const names = concepts.map((c) => c.name);
const split = (s: string) => concepts.flatMap((c, i) => (c.split === s ? [i] : []));
const ev = (q: Float32Array[], idx: number[]) => recallAtK(idx.map((i) => q[i]!), idx.map((i) => names[i]!), idx.map((i) => om[i]!), idx.map((i) => names[i]!));
console.log(JSON.stringify({ WV, PCA, LEARNED, VOCAB, STEPS, s: Math.round(towers.seconds), held: ev(lab, split("heldout")), train: ev(lab, split("train")) }));
