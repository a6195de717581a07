import fs from "node:fs/promises";
import { loadEmojiConcepts, type EmojiConcept } from "./emoji-concepts.ts";
import { speak, WakewordEmbedder, type SpeakerVoice } from "./spoken-labels.ts";

/** Voices the audio projector trains on (espeak-ng voice + variant, words per minute, pitch). */
export const TRAIN_VOICES: SpeakerVoice[] = [
  { voice: "en-us", speed: 160, pitch: 50 },
  { voice: "en-gb+f3", speed: 140, pitch: 60 },
  { voice: "en-us+m3", speed: 185, pitch: 40 },
  { voice: "en-us+f2", speed: 150, pitch: 55 },
];
/** A voice no training clip uses: every audio figure is measured with it. */
export const EVAL_VOICE: SpeakerVoice = { voice: "en-gb-x-rp+f4", speed: 150, pitch: 45 };

export type AudioClipFeatures = { concept: string; split: "train" | "eval"; voice: string; vector: number[] };

/**
 * Spoken labels -> pooled openWakeWord vectors: every training voice for
 * training concepts, the eval voice for all. `shard` of `shards` takes every
 * shards-th concept, so several processes can share the work.
 */
export async function computeAudioFeatures(
  concepts: EmojiConcept[],
  log: (line: string) => void = () => {},
  shard = 0,
  shards = 1,
): Promise<AudioClipFeatures[]> {
  const embedder = await WakewordEmbedder.create();
  const out: AudioClipFeatures[] = [];
  const jobs: Array<{ concept: EmojiConcept; voice: SpeakerVoice; split: "train" | "eval" }> = [];
  for (const concept of concepts.filter((_, index) => index % shards === shard)) {
    if (concept.split === "train") for (const voice of TRAIN_VOICES) jobs.push({ concept, voice, split: "train" });
    jobs.push({ concept, voice: EVAL_VOICE, split: "eval" });
  }
  for (const [i, job] of jobs.entries()) {
    const vector = await embedder.embedClip(await speak(job.concept.label, job.voice));
    out.push({ concept: job.concept.name, split: job.split, voice: `${job.voice.voice}/${job.voice.speed}/${job.voice.pitch}`, vector: Array.from(vector) });
    if (i % 1000 === 0) log(`audio features (shard ${shard + 1}/${shards}) ${i}/${jobs.length}`);
  }
  return out;
}

// Run as a script: train-demo starts shards as child processes that work while the towers train.
if (process.argv[1]?.endsWith("audio-features.ts")) {
  const [outFile, shard = "0", shards = "1"] = process.argv.slice(2);
  if (!outFile) throw new Error("usage: tsx training/audio-features.ts <out.json> [shard] [shards]");
  const features = await computeAudioFeatures(loadEmojiConcepts(), (line) => console.error(line), Number(shard), Number(shards));
  await fs.writeFile(outFile, JSON.stringify(features));
}
