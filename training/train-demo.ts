/**
 * `npm run train:demo`: trains tessera-emoji-clip from the emoji data in
 * node_modules and writes it, with its audio projector and model card, to
 * models/tessera-emoji-clip and models/tessera-emoji-clip-audio-projector
 * (TRAIN_OUT overrides the first; the projector goes beside it). TRAIN_SECONDS sets the
 * towers' time budget (default 720 s) so the whole run stays under 20 minutes
 * on 2 cores.
 */
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { EVAL_VOICE, TRAIN_VOICES, type AudioClipFeatures } from "./audio-features.ts";
import { writeClipExport } from "./clip-export.ts";
import { loadEmojiConcepts, loadIconSet, TRAIN_STYLES, type EmojiConcept } from "./emoji-concepts.ts";
import { ExportedClip } from "./exported-clip.ts";
import { audioProjectorDir, evaluateHeldOut } from "./heldout-evaluation.ts";
import { renderAugmentedIcon, renderIconPixels } from "./icon-renderer.ts";
import { IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD } from "./image-tower.ts";
import { writeModelCard } from "./model-card.ts";
import { seededRandom, shuffled } from "./seeded-random.ts";
import { buildVocabulary, writeTokenizerFiles } from "./text-tokenizer.ts";
import { trainTowers } from "./train-towers.ts";

const repoRoot = path.resolve(import.meta.dirname, "..");
const outDir = path.resolve(process.env.TRAIN_OUT ?? path.join(repoRoot, "models", "tessera-emoji-clip"));
const modelsDir = path.dirname(outDir);
const towerSeconds = Number(process.env.TRAIN_SECONDS ?? 720);
const augmentedVariants = Number(process.env.TRAIN_AUGMENTED_VARIANTS ?? 3);
// 128 concepts (256 drawings) a step, split over two replicas: one per core.
const batchSize = Number(process.env.TRAIN_BATCH_SIZE ?? 128);
const workers = Number(process.env.TRAIN_WORKERS ?? 2);
const learningRate = 2e-3;
const projectorSteps = 1500;
const seed = 20261126;
const started = performance.now();
const log = (line: string) => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);

/** What the text tower reads for a concept: its label first (the usual query), then label + tags, tags, shortcodes. */
function conceptTexts(concept: EmojiConcept, random: () => number): string[] {
  const tags = concept.tags.filter((tag) => !concept.label.includes(tag));
  const some = (count: number) => shuffled(tags, random).slice(0, count).join(" ");
  const texts = [concept.label, `${concept.label} ${some(2)}`, `${concept.label} ${some(4)}`, `${concept.subgroup} ${concept.label}`];
  if (tags.length >= 2) texts.push(some(2), some(3));
  texts.push(...concept.shortcodes.filter((code) => code !== concept.label));
  return texts.map((text) => text.trim());
}

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
    "--kind", "mlp",
    "--loss", "infonce",
    "--steps", String(projectorSteps),
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

// Text: a vocabulary from the training texts, written as the export's tokenizer, then used through transformers.js itself.
const random = seededRandom(seed);
const texts = train.map((concept) => conceptTexts(concept, random));
const vocabulary = buildVocabulary(texts.flat());
await fs.rm(outDir, { recursive: true, force: true });
await fs.rm(audioProjectorDir(outDir), { recursive: true, force: true });
await fs.mkdir(outDir, { recursive: true });
await writeTokenizerFiles(outDir, vocabulary);
env.allowRemoteModels = false;
env.localModelPath = modelsDir + "/";
const tokenizer = await AutoTokenizer.from_pretrained(path.basename(outDir), { local_files_only: true });
const tokenIds = texts.map((list) => list.map((text) => tokenizer.encode(text)));
log(`vocabulary ${vocabulary.length} words; ${texts.flat().length} training texts`);

// Images: the clean drawing and augmented variants, per training style.
const sets = TRAIN_STYLES.map(loadIconSet);
const images: Uint8Array[][][] = [];
for (const concept of train) {
  const perStyle: Uint8Array[][] = [];
  for (const set of sets) {
    const variants = [await renderIconPixels(set, concept.name, IMAGE_SIZE)];
    for (let v = 0; v < augmentedVariants; v++) variants.push(await renderAugmentedIcon(set, concept.name, IMAGE_SIZE, random));
    perStyle.push(variants);
  }
  images.push(perStyle);
}
log(`rendered ${images.length * sets.length * (1 + augmentedVariants)} training drawings`);

const towers = await trainTowers(
  { images, texts: tokenIds, vocabSize: vocabulary.length },
  { seconds: towerSeconds, batchSize, learningRate, workers, seed, log },
);
log(`towers: ${towers.steps} steps in ${towers.seconds.toFixed(0)} s`);
await writeClipExport(outDir, towers.image, towers.text);

// The export must give what tfjs gives: compare a sample through transformers.js.
const exported = await ExportedClip.load(outDir);
const sample = train.slice(0, 64);
const sampleImages = images.slice(0, 64).map((styles) => styles[0]![0]!);
const viaOnnxText = await exported.embedTexts(sample.map((concept) => concept.label));
const viaOnnxImage = await exported.embedImages(sampleImages, IMAGE_SIZE);
await exported.close();
const viaTfText = tf.tidy(() => {
  const weights = new Float32Array(sample.length * vocabulary.length);
  sample.forEach((concept, row) => {
    const ids = tokenizer.encode(concept.label);
    for (const id of ids) weights[row * vocabulary.length + id]! += 1 / ids.length;
  });
  return towers.text.embed(tf.tensor2d(weights, [sample.length, vocabulary.length])).arraySync();
});
const viaTfImage = tf.tidy(() => {
  const values = new Float32Array(sampleImages.length * IMAGE_SIZE * IMAGE_SIZE * 3);
  sampleImages.forEach((pixels, r) => pixels.forEach((v, i) => (values[r * pixels.length + i] = (v / 255 - IMAGE_MEAN[i % 3]!) / IMAGE_STD[i % 3]!)));
  return towers.image.embed(tf.tensor4d(values, [sampleImages.length, IMAGE_SIZE, IMAGE_SIZE, 3])).arraySync();
});
let exportMaxDifference = 0;
for (const [onnxRows, tfRows] of [[viaOnnxText, viaTfText], [viaOnnxImage, viaTfImage]] as const) {
  onnxRows.forEach((row, r) => row.forEach((value, d) => (exportMaxDifference = Math.max(exportMaxDifference, Math.abs(value - tfRows[r]![d]!)))));
}
log(`export matches tfjs: max |difference| ${exportMaxDifference.toExponential(2)}`);
if (exportMaxDifference > 1e-4) throw new Error(`the ONNX export differs from tfjs by ${exportMaxDifference}`);

// Audio: wait for the features, pair each training clip with the text embedding of its label, train the projector with the CLI.
await audioDone;
const audio: AudioClipFeatures[] = [];
for (const file of audioFiles) audio.push(...(JSON.parse(await fs.readFile(file, "utf8")) as AudioClipFeatures[]));
const labelEmbeds = new Map<string, number[]>();
for (let i = 0; i < train.length; i += 256) {
  const chunk = train.slice(i, i + 256);
  const vectors = tf.tidy(() => {
    const weights = new Float32Array(chunk.length * vocabulary.length);
    chunk.forEach((concept, row) => {
      const ids = tokenizer.encode(concept.label);
      for (const id of ids) weights[row * vocabulary.length + id]! += 1 / ids.length;
    });
    return towers.text.embed(tf.tensor2d(weights, [chunk.length, vocabulary.length])).arraySync();
  });
  chunk.forEach((concept, j) => labelEmbeds.set(concept.name, vectors[j]!));
}
const trainClips = audio.filter((clip) => clip.split === "train");
const pairsFile = path.join(workDir, "audio-pairs.jsonl");
await fs.writeFile(pairsFile, trainClips.map((clip) => JSON.stringify({ from: clip.vector, to: labelEmbeds.get(clip.concept), key: clip.concept })).join("\n"));
log(`training the audio projector on ${trainClips.length} clips`);
const projectorReport = JSON.parse(await runProjectorCli(pairsFile)) as { validationMeanCosine: number; validationRecallAt1: number };

log("evaluating the export on held-out drawings, voices and concepts");
const evalAudio = new Map(audio.filter((clip) => clip.split === "eval").map((clip) => [clip.concept, Float32Array.from(clip.vector)]));
const figures = await evaluateHeldOut(outDir, { audioVectors: evalAudio, log });
const totalSeconds = (performance.now() - started) / 1000;
await writeModelCard(outDir, figures, {
  concepts: { train: train.length, heldOut: concepts.length - train.length },
  vocabularySize: vocabulary.length,
  imageVariantsPerStyle: augmentedVariants,
  towerSteps: towers.steps,
  towerSeconds: towers.seconds,
  batchSize,
  learningRate,
  logitScale: towers.logitScale,
  audioClips: trainClips.length,
  audioVoices: TRAIN_VOICES.map((v) => `${v.voice} ${v.speed} wpm`),
  evalVoice: `${EVAL_VOICE.voice} ${EVAL_VOICE.speed} wpm`,
  projectorSteps,
  projectorValidation: { meanCosine: projectorReport.validationMeanCosine, recallAt1: projectorReport.validationRecallAt1 },
  exportMaxDifference,
  totalSeconds,
});
await fs.rm(workDir, { recursive: true, force: true });
log(`wrote ${outDir}`);
console.log(JSON.stringify({ trainDemo: path.relative(repoRoot, outDir), minutes: +(totalSeconds / 60).toFixed(2), steps: towers.steps, ...figures }));
