/**
 * `npm run train:demo`: trains tessera-emoji-clip from the emoji data in
 * node_modules and writes it, with its audio projector and model card, to
 * models/tessera-emoji-clip and models/tessera-emoji-clip-audio-projector
 * (TRAIN_OUT overrides the first; the projector goes beside it).
 *
 * The image tower's front end is fixed (k-means patch filters learned on the
 * training drawings, patch-features.ts), so its features are computed once
 * with onnxruntime; then a fixed number of steps (TRAIN_STEPS) trains the
 * image head and the text tower together in tfjs. The whole run stays under
 * 20 minutes on 2 shared cores.
 */
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { EVAL_VOICE, TRAIN_VOICES, type AudioClipFeatures } from "./audio-features.ts";
import { writeClipExport } from "./clip-export.ts";
import { conceptTexts } from "./concept-texts.ts";
import { loadEmojiConcepts, loadIconSet, TRAIN_STYLES } from "./emoji-concepts.ts";
import { ExportedClip } from "./exported-clip.ts";
import { standardiseFeatures } from "./feature-statistics.ts";
import { audioProjectorDir, evaluateHeldOut } from "./heldout-evaluation.ts";
import { renderAugmentedIcon, renderIconPixels } from "./icon-renderer.ts";
import { FRONT_END_SPEC, IMAGE_SIZE, normalisePixels } from "./image-tower.ts";
import { writeModelCard } from "./model-card.ts";
import { computePatchFeatures, learnPatchFrontEnd } from "./patch-features.ts";
import { seededRandom } from "./seeded-random.ts";
import { buildVocabulary, writeTokenizerFiles } from "./text-tokenizer.ts";
import { fixedWordVectors, useLiteRows, withUseLiteWords } from "./use-word-vectors.ts";
import { trainTowers } from "./train-towers.ts";
import type { FixedWordVectors } from "./text-tower.ts";

const repoRoot = path.resolve(import.meta.dirname, "..");
const outDir = path.resolve(process.env.TRAIN_OUT ?? path.join(repoRoot, "models", "tessera-emoji-clip"));
const modelsDir = path.dirname(outDir);
const towerSteps = Number(process.env.TRAIN_STEPS ?? 900);
const augmentedVariants = Number(process.env.TRAIN_AUGMENTED_VARIANTS ?? 6);
const batchSize = Number(process.env.TRAIN_BATCH_SIZE ?? 256);
const featureDropout = Number(process.env.TRAIN_FEATURE_DROPOUT ?? 0.2);
// The front end's dictionary size and pooling grids (style-proxy.ts's PROXY_FILTERS / PROXY_GRIDS, for the full run).
const frontEndSpec = {
  ...FRONT_END_SPEC,
  filters: Number(process.env.TRAIN_FILTERS ?? FRONT_END_SPEC.filters),
  grids: process.env.TRAIN_GRIDS ? process.env.TRAIN_GRIDS.split(",").map(Number) : FRONT_END_SPEC.grids,
};
// "learned": the text tower's word vectors are learned from scratch (the committed model); "use": USE-lite's embedding
// of each word, fixed and PCA-reduced (issue #21: held-out labels found better at recall@10, trained ones worse; bench/README.md).
const wordVectorSource = process.env.TRAIN_WORD_VECTORS ?? "learned";
const wordVectorSize = Number(process.env.TRAIN_WORD_VECTOR_SIZE ?? 128);
// Learned dimensions beside the fixed ones (start at zero), for what the training texts teach beyond general English.
const learnedWordVectorSize = Number(process.env.TRAIN_LEARNED_WORD_VECTOR_SIZE ?? 0);
const learningRate = 2e-3;
const seed = 20261126;
const started = performance.now();
// The machine is shared: the card records the load the run had.
const loadAverage = { min: os.loadavg()[0]!, max: os.loadavg()[0]! };
setInterval(() => {
  loadAverage.min = Math.min(loadAverage.min, os.loadavg()[0]!);
  loadAverage.max = Math.max(loadAverage.max, os.loadavg()[0]!);
}, 15_000).unref();
const log = (line: string) => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);

/** Runs one shard of the audio features in a child process, alongside the towers' training. */
function startAudioFeatures(file: string, shard: number, shards: number): Promise<void> {
  const script = path.join(import.meta.dirname, "audio-features.ts");
  const child = spawn(process.execPath, ["--import", "tsx", script, file, String(shard), String(shards)], {
    stdio: ["ignore", "inherit", "pipe"],
  });
  child.stderr.on("data", (chunk: Buffer) => log(chunk.toString().trim()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`audio features exited with ${code}`))));
  });
}

function runProjectorCli(pairsFile: string): Promise<string> {
  const args = [
    path.join(repoRoot, "bin", "tessera.js"),
    "projector", "train",
    "--pairs", pairsFile,
    "--from", "audio",
    "--to", "image-text",
    "--name", path.basename(audioProjectorDir(outDir)),
    "--out", audioProjectorDir(outDir),
    "--for", path.basename(outDir),
    "--description", `Spoken words (openWakeWord audio space) into ${path.basename(outDir)}'s image-text space; trained for that model only`,
    "--kind", "prototype",
  ];
  const child = spawn(process.execPath, args, { env: { ...process.env, MODELS_DIR: modelsDir }, stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on("exit", (code) => (code === 0 ? resolve(stdout.trim().split("\n").at(-1)!) : reject(new Error(`projector train exited with ${code}`))));
  });
}

const concepts = loadEmojiConcepts();
const train = concepts.filter((concept) => concept.split === "train");
log(`${concepts.length} concepts: ${train.length} for training, ${concepts.length - train.length} held out`);
const workDir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-train-demo-"));
// espeak-ng and the openWakeWord graphs take ~20-40 ms a clip: two shards keep them off the critical path.
const audioShards = 2;
const audioFiles = Array.from({ length: audioShards }, (_, shard) => path.join(workDir, `audio-features-${shard}.json`));
const audioDone = Promise.all(audioFiles.map((file, shard) => startAudioFeatures(file, shard, audioShards)));

// Text: a vocabulary from the training texts (with pretrained word vectors, plus USE-lite's own English words, a general
// list that owes nothing to the held-out concepts), written as the export's tokenizer, then used through transformers.js itself.
const random = seededRandom(seed);
const texts = train.map((concept) => conceptTexts(concept, random));
const trainingVocabulary = buildVocabulary(texts.flat());
const vocabulary =
  wordVectorSource === "use"
    ? await withUseLiteWords(trainingVocabulary)
    : trainingVocabulary;
await fs.rm(outDir, { recursive: true, force: true });
await fs.rm(audioProjectorDir(outDir), { recursive: true, force: true });
await fs.mkdir(outDir, { recursive: true });
await writeTokenizerFiles(outDir, vocabulary);
env.allowRemoteModels = false;
env.localModelPath = modelsDir + "/";
const tokenizer = await AutoTokenizer.from_pretrained(path.basename(outDir), { local_files_only: true });
const tokenIds = texts.map((list) => list.map((text) => tokenizer.encode(text)));
log(`vocabulary ${vocabulary.length} words; ${texts.flat().length} training texts`);

// Images: the clean drawing and augmented variants, per training style, as RGB bytes.
const sets = TRAIN_STYLES.map(loadIconSet);
const perConcept = sets.length * (1 + augmentedVariants);
const pixelCount = IMAGE_SIZE * IMAGE_SIZE * 3;
const renders = new Uint8Array(train.length * perConcept * pixelCount);
let rendered = 0;
for (const concept of train) {
  for (const set of sets) {
    renders.set(await renderIconPixels(set, concept.name, IMAGE_SIZE), rendered++ * pixelCount);
    for (let v = 0; v < augmentedVariants; v++) renders.set(await renderAugmentedIcon(set, concept.name, IMAGE_SIZE, random), rendered++ * pixelCount);
  }
}
const picture = (index: number) => normalisePixels(renders.subarray(index * pixelCount, (index + 1) * pixelCount));
log(`rendered ${rendered} training drawings`);

// The fixed front end: k-means filters on patches of the training drawings, then every drawing's features, once.
const frontEnd = learnPatchFrontEnd(rendered, picture, frontEndSpec, random, { log });
const rawFeatures = await computePatchFeatures(frontEnd, rendered, picture);
const { mean: featureMean, std: featureStd } = standardiseFeatures(rawFeatures);
const features = train.map((_, c) =>
  sets.map((_, s) => rawFeatures.slice((c * sets.length + s) * (1 + augmentedVariants), (c * sets.length + s + 1) * (1 + augmentedVariants))),
);
log(`front end: ${frontEnd.spec.filters} filters, ${rawFeatures[0]!.length} features per drawing`);

// Pretrained word semantics: each word embedded alone by USE-lite, reduced to its top principal components; the special
// tokens get zero vectors. Kept fixed in training, so a word seen only outside the training texts keeps its meaning.
let wordVectors: FixedWordVectors | undefined;
if (wordVectorSource === "use") {
  wordVectors = fixedWordVectors(await useLiteRows(vocabulary, log), wordVectorSize, learnedWordVectorSize);
  log(`word vectors: USE-lite, ${wordVectorSize} principal components`);
}

const towers = await trainTowers(
  { frontEnd, featureMean, featureStd, features, texts: tokenIds, vocabSize: vocabulary.length, wordVectors },
  { steps: towerSteps, batchSize, learningRate, featureDropout, seed, log },
);
log(`towers: ${towers.steps} steps in ${towers.seconds.toFixed(0)} s`);
await writeClipExport(outDir, towers.image, towers.text);

const embedFeatures = (rows: Float32Array[]) =>
  tf.tidy(() => {
    const data = new Float32Array(rows.length * rows[0]!.length);
    rows.forEach((row, i) => data.set(row, i * row.length));
    return towers.image.embed(tf.tensor2d(data, [rows.length, rows[0]!.length])).arraySync();
  });
const embedLabels = (labels: string[]) =>
  tf.tidy(() => {
    const weights = new Float32Array(labels.length * vocabulary.length);
    labels.forEach((label, row) => {
      const ids = tokenizer.encode(label);
      for (const id of ids) weights[row * vocabulary.length + id]! += 1 / ids.length;
    });
    return towers.text.embed(tf.tensor2d(weights, [labels.length, vocabulary.length])).arraySync();
  });

// The export must give what tfjs gives: compare a sample (pixels through the ONNX front end and head) via transformers.js.
const exported = await ExportedClip.load(outDir);
const sample = train.slice(0, 64);
const cleanIndex = (c: number, style: number) => (c * sets.length + style) * (1 + augmentedVariants);
const sampleImages = sample.map((_, c) => renders.slice(cleanIndex(c, 0) * pixelCount, (cleanIndex(c, 0) + 1) * pixelCount));
const viaOnnxText = await exported.embedTexts(sample.map((concept) => concept.label));
const viaOnnxImage = await exported.embedImages(sampleImages, IMAGE_SIZE);
await exported.close();
const viaTfText = embedLabels(sample.map((concept) => concept.label));
const viaTfImage = embedFeatures(sample.map((_, c) => features[c]![0]![0]!));
let exportMaxDifference = 0;
for (const [onnxRows, tfRows] of [[viaOnnxText, viaTfText], [viaOnnxImage, viaTfImage]] as const) {
  onnxRows.forEach((row, r) => row.forEach((value, d) => (exportMaxDifference = Math.max(exportMaxDifference, Math.abs(value - tfRows[r]![d]!)))));
}
log(`export matches tfjs: max |difference| ${exportMaxDifference.toExponential(2)}`);
if (exportMaxDifference > 1e-3) throw new Error(`the ONNX export differs from tfjs by ${exportMaxDifference}`);

// Audio: each training clip's target is the concept's place in the shared space: its label's text embedding plus the
// mean embedding of its training drawings (clean and augmented, both styles), so speech lands among pictures, not only near text.
await audioDone;
const audio: AudioClipFeatures[] = [];
for (const file of audioFiles) audio.push(...(JSON.parse(await fs.readFile(file, "utf8")) as AudioClipFeatures[]));
const unit = (vector: number[]) => {
  const norm = Math.hypot(...vector) || 1;
  return vector.map((value) => value / norm);
};
const audioTargets = new Map<string, number[]>();
for (let i = 0; i < train.length; i += 256) {
  const chunk = train.slice(i, i + 256);
  const labels = embedLabels(chunk.map((concept) => concept.label));
  chunk.forEach((concept, j) => {
    const drawings = embedFeatures(features[i + j]!.flat());
    const prototype = unit(drawings.reduce((sum, row) => sum.map((value, d) => value + row[d]!), new Array<number>(drawings[0]!.length).fill(0)));
    audioTargets.set(concept.name, unit(labels[j]!.map((value, d) => value + prototype[d]!)));
  });
}
const trainClips = audio.filter((clip) => clip.split === "train");
const pairsFile = path.join(workDir, "audio-pairs.jsonl");
await fs.writeFile(pairsFile, trainClips.map((clip) => JSON.stringify({ from: clip.vector, to: audioTargets.get(clip.concept), key: clip.concept })).join("\n"));
log(`training the audio projector on ${trainClips.length} clips`);
const projectorReport = JSON.parse(await runProjectorCli(pairsFile)) as { validationMeanCosine: number; validationRecallAt1: number; sharpness: number };

log("evaluating the export on held-out drawings, voices and concepts");
const evalAudio = new Map(audio.filter((clip) => clip.split === "eval").map((clip) => [clip.concept, Float32Array.from(clip.vector)]));
const figures = await evaluateHeldOut(outDir, { audioVectors: evalAudio, log });
const totalSeconds = (performance.now() - started) / 1000;
await writeModelCard(outDir, figures, {
  concepts: { train: train.length, heldOut: concepts.length - train.length },
  vocabularySize: vocabulary.length,
  wordVectors: wordVectors ? { source: "use", size: wordVectorSize, learnedSize: learnedWordVectorSize } : { source: "learned", size: towers.text.wordSize },
  imageVariantsPerStyle: augmentedVariants,
  frontEnd: { ...frontEnd.spec, features: rawFeatures[0]!.length },
  featureDropout,
  towerSteps: towers.steps,
  towerSeconds: towers.seconds,
  batchSize,
  learningRate,
  logitScale: towers.logitScale,
  audioClips: trainClips.length,
  audioVoices: TRAIN_VOICES.map((v) => `${v.voice} ${v.speed} wpm`),
  evalVoice: `${EVAL_VOICE.voice} ${EVAL_VOICE.speed} wpm`,
  projectorSharpness: projectorReport.sharpness,
  projectorValidation: { meanCosine: projectorReport.validationMeanCosine, recallAt1: projectorReport.validationRecallAt1 },
  exportMaxDifference,
  totalSeconds,
  loadAverage,
});
await fs.rm(workDir, { recursive: true, force: true });
log(`wrote ${outDir}`);
console.log(JSON.stringify({ trainDemo: path.relative(repoRoot, outDir), minutes: +(totalSeconds / 60).toFixed(2), steps: towers.steps, ...figures }));
