import path from "node:path";
import { loadEmojiConcepts, loadIconSet, type EmojiConcept } from "./emoji-concepts.ts";
import { ExportedClip, ExportedProjector } from "./exported-clip.ts";
import { renderIconPixels } from "./icon-renderer.ts";
import { IMAGE_SIZE } from "./image-tower.ts";
import { queryRanks, recallOfRanks, type Recall } from "./retrieval-metrics.ts";
import { EVAL_VOICE } from "./audio-features.ts";
import { speak, WakewordEmbedder } from "./spoken-labels.ts";

export type SplitFigures = { textToImage: Recall; imageToImage: Recall; audioToImage: Recall };
/** Held-out figures: OpenMoji drawings (a style never trained on) as candidates, for trained and for held-out concepts. */
export type HeldOutFigures = { trainedConcepts: SplitFigures; heldOutConcepts: SplitFigures };
/** Each query's rank (0: first) by query, keyed `${concept}` (text, audio) or `${concept}/${style}` (image), per split and task. */
export type QueryRanks = Record<EmojiConcept["split"], Record<keyof SplitFigures, Record<string, number>>>;

/** The audio projector sits beside the model folder, where the model registry finds its manifest. */
export function audioProjectorDir(modelDir: string): string {
  return `${path.resolve(modelDir)}-audio-projector`;
}

/**
 * Measures the exported model as a client would use it (transformers.js for
 * text and images, the projector ONNX for audio):
 * - text->image: the emoji's English label finds its OpenMoji drawing;
 * - image->image: its Noto and Twemoji drawings find the OpenMoji one;
 * - audio->image: the label spoken by a voice no training clip used finds it.
 * Candidates are the OpenMoji drawings of the trained concepts, or of the
 * held-out concepts for the held-out figures.
 */
export async function evaluateHeldOut(
  modelDir: string,
  options: {
    audioVectors?: Map<string, Float32Array>;
    /** What a spoken label goes through before the model hears it (default: nothing; the retrieval bench: a 16-bit WAV). */
    spokenAs?: (samples: Float32Array) => Float32Array;
    log?: (line: string) => void;
    ranks?: QueryRanks;
    splits?: Array<EmojiConcept["split"]>;
  } = {},
): Promise<HeldOutFigures> {
  const log = options.log ?? (() => {});
  // Only the concepts of the splits asked for are embedded; a split left out has no queries.
  const concepts = loadEmojiConcepts().filter((concept) => !options.splits || options.splits.includes(concept.split));
  const clip = await ExportedClip.load(modelDir);
  const projector = await ExportedProjector.load(path.join(audioProjectorDir(modelDir), "projector.onnx"));
  try {
    const render = async (style: "noto" | "twemoji" | "openmoji") => {
      const set = loadIconSet(style);
      const pixels: Uint8Array[] = [];
      for (const concept of concepts) pixels.push(await renderIconPixels(set, concept.name, IMAGE_SIZE));
      return clip.embedImages(pixels, IMAGE_SIZE);
    };
    const openmoji = await render("openmoji");
    const noto = await render("noto");
    const twemoji = await render("twemoji");
    const texts = await clip.embedTexts(concepts.map((concept) => concept.label));
    log("images and texts embedded");
    const audioVectors = options.audioVectors ?? (await spokenLabelVectors(concepts, options.spokenAs));
    const audio = await projector.project(concepts.map((concept) => audioVectors.get(concept.name)!));
    log("audio embedded");

    const figures = (split: EmojiConcept["split"]): SplitFigures => {
      const index = concepts.flatMap((concept, i) => (concept.split === split ? [i] : []));
      if (index.length === 0) {
        const none: Recall = { r1: 0, r5: 0, r10: 0, queries: 0, candidates: 0 };
        return { textToImage: none, imageToImage: none, audioToImage: none };
      }
      const names = index.map((i) => concepts[i]!.name);
      const pool = index.map((i) => openmoji[i]!);
      const pick = (vectors: Float32Array[]) => index.map((i) => vectors[i]!);
      const imageKeys = [...names.map((name) => `${name}/noto`), ...names.map((name) => `${name}/twemoji`)];
      const measure = (task: keyof SplitFigures, queries: Float32Array[], queryNames: string[], keys: string[]) => {
        const ranks = queryRanks(queries, queryNames, pool, names);
        if (options.ranks) options.ranks[split][task] = Object.fromEntries(keys.map((key, i) => [key, ranks[i]!]));
        return recallOfRanks(ranks, pool.length);
      };
      return {
        textToImage: measure("textToImage", pick(texts), names, names),
        imageToImage: measure("imageToImage", [...pick(noto), ...pick(twemoji)], [...names, ...names], imageKeys),
        audioToImage: measure("audioToImage", pick(audio), names, names),
      };
    };
    return { trainedConcepts: figures("train"), heldOutConcepts: figures("heldout") };
  } finally {
    await clip.close();
  }
}

/** Each concept's label spoken with the evaluation voice, as pooled openWakeWord vectors. */
export async function spokenLabelVectors(
  concepts: EmojiConcept[],
  spokenAs: (samples: Float32Array) => Float32Array = (samples) => samples,
): Promise<Map<string, Float32Array>> {
  const embedder = await WakewordEmbedder.create();
  const vectors = new Map<string, Float32Array>();
  // espeak-ng runs as its own process: keep a few speaking while the embedder works.
  const speaking = concepts.map(() => null as Promise<Float32Array> | null);
  const startSpeaking = (i: number) => {
    if (i < concepts.length && !speaking[i]) speaking[i] = speak(concepts[i]!.label, EVAL_VOICE);
  };
  for (let i = 0; i < concepts.length; i++) {
    for (let ahead = 0; ahead < 4; ahead++) startSpeaking(i + ahead);
    vectors.set(concepts[i]!.name, await embedder.embedClip(spokenAs(await speaking[i]!)));
    speaking[i] = null;
  }
  return vectors;
}
