/**
 * `npm run bench -- transcription`: the built-in offline transcriber
 * (pocketsphinx) on espeak-ng speech it was never tuned on: sentences spoken
 * in several voices. Reports the word error rate of its transcripts, and how
 * often a key phrase of a sentence finds that sentence's clip first among all
 * the clips: by the transcript's words, and by pronunciation (the phones
 * heard, services/search/phonetic-match.ts), which is what search uses; and
 * whether the phone-key index (services/search/spoken-index.ts) hands search
 * the clips it then matches: the share of the matches search claims whose clip
 * shares a key with the query, and the own clip's rank by shared keys.
 * Sizes: BENCH_TRANSCRIPTION_SENTENCES (default all 24), BENCH_TRANSCRIPTION_VOICES (comma list).
 */
import { spawnSync } from "node:child_process";
import { decodeWav } from "../services/generation/wav-file.ts";
import { recognizeSpeech, type TimedToken } from "../services/generation/pocketsphinx-transcriber.ts";
import { bestPhoneMatch, MIN_MATCH_MARGIN, phoneEvidence, queryPhones } from "../services/search/phonetic-match.ts";
import { phoneticKeys } from "../services/search/spoken-index.ts";

/** [sentence, key phrase a user would search for]. */
const SENTENCES: Array<[string, string]> = [
  ["the quarterly budget meeting is on thursday", "quarterly budget meeting"],
  ["please remember to water the tomato plants", "tomato plants"],
  ["the lighthouse needs a new lamp before winter", "lighthouse lamp"],
  ["our train to amsterdam leaves at seven", "train to amsterdam"],
  ["the kitchen sink is leaking again", "kitchen sink leaking"],
  ["send the invoice to the finance department", "finance department"],
  ["the concert was cancelled because of the storm", "concert cancelled"],
  ["my grandmother bakes the best apple pie", "apple pie"],
  ["the museum opens at ten on saturday", "museum opens saturday"],
  ["we need more paper for the printer", "paper for the printer"],
  ["the elephant walked slowly across the river", "elephant river"],
  ["turn left after the second traffic light", "traffic light"],
  ["the password must contain twelve characters", "password twelve characters"],
  ["the doctor said to rest for a week", "doctor rest"],
  ["the football match ended in a draw", "football match"],
  ["the library books are due next monday", "library books"],
  ["a strong coffee helps me wake up", "strong coffee"],
  ["the satellite launch was delayed again", "satellite launch"],
  ["the children built a castle out of sand", "castle out of sand"],
  ["the bakery sells fresh bread every morning", "fresh bread"],
  ["the volcano erupted for the first time in years", "volcano erupted"],
  ["the hotel room has a view of the mountains", "view of the mountains"],
  ["remember to renew your passport this summer", "renew your passport"],
  ["the orchestra played a beautiful symphony", "beautiful symphony"],
];
const VOICES = ["en-us", "en-us+m3", "en-us+f2", "en-gb", "en-us+m7"];

function speak(text: string, voice: string): Float32Array {
  const wav = spawnSync("espeak-ng", ["--stdout", "-v", voice, "-s", "150", text], { maxBuffer: 64 * 1024 * 1024 });
  if (wav.status !== 0) throw new Error(`espeak-ng failed: ${wav.stderr.toString()}`);
  // espeak-ng writes 22050 Hz; ffmpeg resamples to the 16 kHz pocketsphinx takes, as ingest's decoder does.
  const resampled = spawnSync("ffmpeg", ["-v", "error", "-i", "pipe:0", "-ar", "16000", "-ac", "1", "-f", "wav", "pipe:1"], { input: wav.stdout, maxBuffer: 64 * 1024 * 1024 });
  return decodeWav(resampled.stdout).samples;
}

/** Levenshtein distance over words. */
function wordErrors(reference: string[], hypothesis: string[]): number {
  let row = Array.from({ length: hypothesis.length + 1 }, (_, index) => index);
  for (let i = 1; i <= reference.length; i++) {
    const next = [i];
    for (let j = 1; j <= hypothesis.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (reference[i - 1] === hypothesis[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[hypothesis.length]!;
}

export default async function transcription() {
  const count = Number(process.env.BENCH_TRANSCRIPTION_SENTENCES ?? SENTENCES.length);
  const voices = process.env.BENCH_TRANSCRIPTION_VOICES?.split(",") ?? VOICES;
  const clips: Array<{ sentence: string; phrase: string; voice: string; words: TimedToken[]; phones: TimedToken[] }> = [];
  const started = Date.now();
  let audioSec = 0;
  for (const [index, [sentence, phrase]] of SENTENCES.slice(0, count).entries()) {
    const voice = voices[index % voices.length]!;
    const samples = speak(sentence, voice);
    audioSec += samples.length / 16000;
    const heard = await recognizeSpeech(samples, { phones: true, timeoutMs: 120_000 });
    clips.push({ sentence, phrase, voice, words: heard.words, phones: heard.phones ?? [] });
    console.log(`${voice.padEnd(9)} "${sentence}" -> "${heard.words.map((word) => word.token).join(" ")}"`);
  }
  const recogniseSec = (Date.now() - started) / 1000;
  if (process.env.BENCH_TRANSCRIPTION_DUMP) (await import("node:fs")).writeFileSync(process.env.BENCH_TRANSCRIPTION_DUMP, JSON.stringify(clips));
  let errors = 0;
  let referenceWords = 0;
  for (const clip of clips) {
    const reference = clip.sentence.split(" ");
    errors += wordErrors(reference, clip.words.map((word) => word.token.toLowerCase()));
    referenceWords += reference.length;
  }
  // Found first by words: the clip whose transcript shares most of the phrase's words (ties count as misses).
  const phraseWords = (phrase: string) => phrase.split(" ").filter((word) => word.length > 3);
  let foundByWords = 0;
  let foundByPhones = 0;
  let sentenceFoundByPhones = 0;
  const trueScores: number[] = [];
  let claimed = 0;
  let claimedKeyed = 0;
  const keyRanks: number[] = [];
  const clipKeys = clips.map((clip) => new Set(phoneticKeys(clip.phones.map((phone) => phone.token))));
  const otherBest: number[] = [];
  for (const clip of clips) {
    const wanted = phraseWords(clip.phrase);
    const overlap = clips.map((other) => wanted.filter((word) => other.words.some((heard) => heard.token.toLowerCase() === word)).length);
    const bestOverlap = Math.max(...overlap);
    if (bestOverlap > 0 && overlap[clips.indexOf(clip)] === bestOverlap && overlap.filter((value) => value === bestOverlap).length === 1) foundByWords++;
    const phones = (await queryPhones(clip.phrase)).phones;
    const scores = clips.map((other) => bestPhoneMatch(phones, other.phones.map((phone) => ({ phone: phone.token, start: phone.start, end: phone.end })))?.score ?? 0);
    const own = scores[clips.indexOf(clip)]!;
    trueScores.push(own);
    otherBest.push(Math.max(...scores.filter((_, index) => index !== clips.indexOf(clip))));
    if (scores.every((score, index) => index === clips.indexOf(clip) || score < own)) foundByPhones++;
    // The index: which clips share keys with the phrase, and whether the matches search would claim are among them.
    const ownIndex = clips.indexOf(clip);
    const queryKeys = phoneticKeys(phones);
    const shared = clipKeys.map((keys) => queryKeys.filter((key) => keys.has(key)).length);
    keyRanks.push(1 + shared.filter((count, index) => index !== ownIndex && count > shared[ownIndex]!).length);
    for (const [index, other] of clips.entries()) {
      const evidence = phoneEvidence(phones, other.phones.map((phone) => ({ phone: phone.token, start: phone.start, end: phone.end })));
      if (!evidence || evidence.margin < MIN_MATCH_MARGIN) continue;
      claimed++;
      if (shared[index]! > 0) claimedKeyed++;
    }
    const sentencePhones = (await queryPhones(clip.sentence)).phones;
    const sentenceScores = clips.map((other) => bestPhoneMatch(sentencePhones, other.phones.map((phone) => ({ phone: phone.token, start: phone.start, end: phone.end })))?.score ?? 0);
    if (sentenceScores.every((score, index) => index === clips.indexOf(clip) || score < sentenceScores[clips.indexOf(clip)]!)) sentenceFoundByPhones++;
  }
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  console.log(
    JSON.stringify({
      bench: "transcription",
      clips: clips.length,
      voices,
      wordErrorRate: Number((errors / referenceWords).toFixed(3)),
      phraseFoundFirstByWords: Number((foundByWords / clips.length).toFixed(3)),
      phraseFoundFirstByPhones: Number((foundByPhones / clips.length).toFixed(3)),
      sentenceFoundFirstByPhones: Number((sentenceFoundByPhones / clips.length).toFixed(3)),
      phoneScoreOwnMean: Number(mean(trueScores).toFixed(3)),
      phoneScoreBestOtherMean: Number(mean(otherBest).toFixed(3)),
      realTimeFactor: Number((recogniseSec / audioSec).toFixed(2)),
      claimedMatchesKeyed: Number((claimedKeyed / Math.max(1, claimed)).toFixed(3)),
      claimedMatches: claimed,
      ownClipKeyRankMean: Number(mean(keyRanks).toFixed(2)),
    }),
  );
}
