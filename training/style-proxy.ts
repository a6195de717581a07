/**
 * `tsx training/style-proxy.ts`: the check used to choose the image tower's
 * settings without looking at OpenMoji. It trains on Noto drawings only and
 * measures, on the training concepts, how the plain label and the Noto
 * drawing find the concept's Twemoji drawing (a style this run never saw).
 * OpenMoji stays untouched: it only ever measures the final model.
 * Settings come from the environment (PROXY_* variables below).
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { conceptTexts } from "./concept-texts.ts";
import { loadEmojiConcepts, loadIconSet } from "./emoji-concepts.ts";
import { renderAugmentedIcon, renderIconPixels } from "./icon-renderer.ts";
import { FRONT_END_SPEC, IMAGE_SIZE, normalisePixels } from "./image-tower.ts";
import { computePatchFeatures, featureSize, learnPatchFrontEnd } from "./patch-features.ts";
import { recallAtK } from "./retrieval-metrics.ts";
import { seededRandom } from "./seeded-random.ts";
import { buildVocabulary, writeTokenizerFiles } from "./text-tokenizer.ts";
import { standardiseFeatures } from "./feature-statistics.ts";
import { trainTowers } from "./train-towers.ts";

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const variants = num("PROXY_VARIANTS", 7);
const steps = num("PROXY_STEPS", 1000);
const started = performance.now();
const log = (line: string) => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);
const spec = {
  ...FRONT_END_SPEC,
  filters: num("PROXY_FILTERS", FRONT_END_SPEC.filters),
  alpha: num("PROXY_ALPHA", FRONT_END_SPEC.alpha),
  grids: process.env.PROXY_GRIDS ? process.env.PROXY_GRIDS.split(",").map(Number) : FRONT_END_SPEC.grids,
};

const train = loadEmojiConcepts().filter((concept) => concept.split === "train");
const random = seededRandom(1);
const noto = loadIconSet("noto");
const twemoji = loadIconSet("twemoji");
const cacheFile = path.join(os.tmpdir(), `tessera-proxy-renders-${IMAGE_SIZE}-${variants}.bin`);
const pixels = IMAGE_SIZE * IMAGE_SIZE * 3;
let renders: Uint8Array;
try {
  renders = new Uint8Array(await fs.readFile(cacheFile));
} catch {
  renders = new Uint8Array(train.length * (variants + 2) * pixels);
  let offset = 0;
  for (const concept of train) {
    renders.set(await renderIconPixels(noto, concept.name, IMAGE_SIZE), offset);
    offset += pixels;
    for (let v = 0; v < variants; v++) {
      renders.set(await renderAugmentedIcon(noto, concept.name, IMAGE_SIZE, random), offset);
      offset += pixels;
    }
    renders.set(await renderIconPixels(twemoji, concept.name, IMAGE_SIZE), offset);
    offset += pixels;
  }
  await fs.writeFile(cacheFile, renders);
}
log("rendered");
const picture = (concept: number, index: number) => normalisePixels(renders.subarray((concept * (variants + 2) + index) * pixels, (concept * (variants + 2) + index + 1) * pixels));
const notoPicture = (i: number) => picture(Math.floor(i / (variants + 1)), i % (variants + 1));
// The front end and its features are cached per setting, so several head settings can be compared on the same features.
const featureCache = path.join(os.tmpdir(), `tessera-proxy-features-${JSON.stringify(spec).replace(/[^0-9a-z]+/gi, "_")}-${variants}.bin`);
const frontEndFeatures = featureSize(spec);
let allFeatures: Float32Array[];
let frontEnd: ReturnType<typeof learnPatchFrontEnd>;
try {
  const buffer = await fs.readFile(featureCache);
  const values = new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 4);
  const n = 3 * spec.patch * spec.patch;
  frontEnd = { spec, weights: values.slice(0, spec.filters * n), bias: values.slice(spec.filters * n, spec.filters * (n + 1)) };
  const rest = values.subarray(spec.filters * (n + 1));
  allFeatures = Array.from({ length: rest.length / frontEndFeatures }, (_, i) => rest.slice(i * frontEndFeatures, (i + 1) * frontEndFeatures));
} catch {
  frontEnd = learnPatchFrontEnd(train.length * (variants + 1), notoPicture, spec, random, { log });
  allFeatures = [
    ...(await computePatchFeatures(frontEnd, train.length * (variants + 1), notoPicture)),
    ...(await computePatchFeatures(frontEnd, train.length, (c) => picture(c, variants + 1))),
  ];
  const out = new Float32Array(frontEnd.weights.length + frontEnd.bias.length + allFeatures.length * frontEndFeatures);
  out.set(frontEnd.weights);
  out.set(frontEnd.bias, frontEnd.weights.length);
  allFeatures.forEach((row, i) => out.set(row, frontEnd.weights.length + frontEnd.bias.length + i * frontEndFeatures));
  await fs.writeFile(featureCache, out);
}
log("features");
// PROXY_USE picks feature blocks (e.g. "g2,max,colour"): the front end writes grid blocks in order, then max, then colour.
const blocks: Array<{ name: string; start: number; length: number }> = [];
let offset2 = 0;
for (const grid of spec.grids) {
  blocks.push({ name: `g${grid}`, start: offset2, length: spec.filters * grid * grid });
  offset2 += spec.filters * grid * grid;
}
blocks.push({ name: "max", start: offset2, length: spec.filters });
blocks.push({ name: "colour", start: offset2 + spec.filters, length: frontEndFeatures - offset2 - spec.filters });
const use = (process.env.PROXY_USE ?? blocks.map((block) => block.name).join(",")).split(",");
const chosen = blocks.filter((block) => use.includes(block.name));
const select = (row: Float32Array) => {
  const out = new Float32Array(chosen.reduce((sum, block) => sum + block.length, 0));
  let at = 0;
  for (const block of chosen) {
    out.set(row.subarray(block.start, block.start + block.length), at);
    at += block.length;
  }
  return out;
};
const selected = allFeatures.map(select);
const notoFeatures = selected.slice(0, train.length * (variants + 1));
const twemojiFeatures = selected.slice(train.length * (variants + 1));
const { mean, std } = standardiseFeatures(notoFeatures);
for (const row of twemojiFeatures) for (let i = 0; i < row.length; i++) row[i] = (row[i]! - mean[i]!) / std[i]!;

const texts = train.map((concept) => conceptTexts(concept, random));
const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-proxy-"));
await fs.mkdir(path.join(dir, "tok"));
await writeTokenizerFiles(path.join(dir, "tok"), buildVocabulary(texts.flat()));
env.allowRemoteModels = false;
env.localModelPath = dir + "/";
const tokenizer = await AutoTokenizer.from_pretrained("tok", { local_files_only: true });
const vocabSize = buildVocabulary(texts.flat()).length;
const towers = await trainTowers(
  {
    frontEnd,
    featureMean: mean,
    featureStd: std,
    features: train.map((_, c) => [notoFeatures.slice(c * (variants + 1), (c + 1) * (variants + 1))]),
    texts: texts.map((list) => list.map((text) => tokenizer.encode(text))),
    vocabSize,
  },
  { steps, batchSize: num("PROXY_BATCH", 256), learningRate: num("PROXY_LR", 2e-3), featureDropout: num("PROXY_DROPOUT", 0.2), seed: 5, log },
);
const embed = (rows: Float32Array[]) => {
  const data = new Float32Array(rows.length * rows[0]!.length);
  rows.forEach((row, i) => data.set(row, i * row.length));
  return tf.tidy(() => towers.image.embed(tf.tensor2d(data, [rows.length, rows[0]!.length])).arraySync()).map((row) => Float32Array.from(row));
};
const twemojiEmbeds = embed(twemojiFeatures);
const notoEmbeds = embed(train.map((_, c) => notoFeatures[c * (variants + 1)]!));
const labelEmbeds = tf.tidy(() => {
  const weights = new Float32Array(train.length * vocabSize);
  train.forEach((concept, row) => {
    const ids = tokenizer.encode(concept.label);
    for (const id of ids) weights[row * vocabSize + id]! += 1 / ids.length;
  });
  return towers.text.embed(tf.tensor2d(weights, [train.length, vocabSize])).arraySync();
}).map((row) => Float32Array.from(row));
const names = train.map((concept) => concept.name);
console.log(
  JSON.stringify({
    spec,
    use,
    hidden: process.env.TRAIN_IMAGE_HIDDEN ?? "default",
    dropout: process.env.PROXY_DROPOUT ?? 0.2,
    batch: process.env.PROXY_BATCH ?? 256,
    variants,
    steps,
    seconds: Math.round((performance.now() - started) / 1000),
    trainSeconds: Math.round(towers.seconds),
    textToTwemoji: recallAtK(labelEmbeds, names, twemojiEmbeds, names),
    notoToTwemoji: recallAtK(notoEmbeds, names, twemojiEmbeds, names),
  }),
);
await fs.rm(dir, { recursive: true, force: true });
