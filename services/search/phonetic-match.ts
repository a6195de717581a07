import { readFile } from "node:fs/promises";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import path from "node:path";
import type { SpokenPhone } from "../assets/asset-text.ts";
import { POCKETSPHINX_MODEL_DIR } from "../generation/pocketsphinx-transcriber.ts";

/**
 * Finding spoken words by how they sound. The phone recogniser hears synthetic
 * and accented voices far better than the word recogniser guesses their words,
 * so a text query's words are turned into phones (CMU pronouncing dictionary,
 * the one pocketsphinx ships) and looked for in the phones heard in the asset
 * with an approximate substring match (edit distance where the match may start
 * and end anywhere, Sellers 1980), similar phones costing less to swap.
 */

/**
 * Sounds that recognisers confuse with each other: a swap of vowels costs 0.5, inside a consonant class 0.7, else 1;
 * an extra phone heard costs 0.5 (the recogniser splits sounds), one missing 1. Chosen on `npm run bench -- transcription`.
 */
const PHONE_CLASSES = [
  ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"],
  ["P", "B", "T", "D", "K", "G"],
  ["F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH"],
  ["CH", "JH", "SH", "ZH"],
  ["M", "N", "NG"],
  ["L", "R", "W", "Y", "ER"],
];
const classesOf = new Map<string, Set<number>>();
PHONE_CLASSES.forEach((members, index) => members.forEach((phone) => classesOf.set(phone, (classesOf.get(phone) ?? new Set()).add(index))));

function substitutionCost(a: string, b: string): number {
  if (a === b) return 0;
  const left = classesOf.get(a);
  const right = classesOf.get(b);
  if (left && right) for (const index of left) if (right.has(index)) return index === 0 ? 0.5 : 0.7;
  return 1;
}

/**
 * Phones as small integers and their swap costs as one table, so the match's inner loop reads an array instead of
 * two maps and sets per cell: a search scans every spoken asset of the project with it.
 */
const phoneIds = new Map<string, number>();
const KNOWN_PHONES = [...classesOf.keys()];
KNOWN_PHONES.forEach((phone, index) => phoneIds.set(phone, index));
const OTHER_PHONE = KNOWN_PHONES.length; // anything else (SIL, +NSN+, ...): costs 1 against every phone, itself included
const PHONE_COUNT = OTHER_PHONE + 1;
const SWAP_COST = new Float64Array(PHONE_COUNT * PHONE_COUNT).fill(1);
for (const a of KNOWN_PHONES) for (const b of KNOWN_PHONES) SWAP_COST[phoneIds.get(a)! * PHONE_COUNT + phoneIds.get(b)!] = substitutionCost(a, b);
const phoneId = (phone: string) => phoneIds.get(phone) ?? OTHER_PHONE;

const EXTRA_PHONE_COST = 0.5;

let dictionary: Promise<Map<string, string[]>> | undefined;
/** Dictionary lines parsed between two turns of the event loop (about 130k lines in all). */
const PARSE_SLICE_LINES = 10_000;

/**
 * The CMU dictionary's first pronunciation of each word, read once (about 130k words, 3.5 MB) without holding the
 * event loop: the file is read asynchronously and parsed in slices, so a gateway's first spoken search does not stall
 * the requests beside it.
 */
function pronouncingDictionary(): Promise<Map<string, string[]>> {
  dictionary ??= loadDictionary();
  return dictionary;
}

async function loadDictionary(): Promise<Map<string, string[]>> {
  const loaded = new Map<string, string[]>();
  // Without pocketsphinx-en-us there is nothing heard to match against either: an empty dictionary.
  const text = await readFile(path.join(POCKETSPHINX_MODEL_DIR, "cmudict-en-us.dict"), "utf8").catch(() => "");
  const lines = text.split("\n");
  for (let from = 0; from < lines.length; from += PARSE_SLICE_LINES) {
    if (from > 0) await yieldToEventLoop();
    for (const line of lines.slice(from, from + PARSE_SLICE_LINES)) {
      const [word, ...phones] = line.trim().split(/\s+/);
      if (!word || phones.length === 0 || word.includes("(")) continue;
      loaded.set(word.toLowerCase(), phones.map((phone) => phone.replace(/\d$/, "")));
    }
  }
  return loaded;
}

/** A query's words as phones; words the dictionary does not know are left out. */
export async function queryPhones(text: string): Promise<{ phones: string[]; known: number; words: number }> {
  const words = text.toLowerCase().match(/[a-z']+/g) ?? [];
  const dict = await pronouncingDictionary();
  const phones: string[] = [];
  let known = 0;
  for (const word of words) {
    const pronunciation = dict.get(word);
    if (!pronunciation) continue;
    known++;
    phones.push(...pronunciation);
  }
  return { phones, known, words: words.length };
}

export type PhoneMatch = {
  /** 1 for the query's phones heard exactly; 0 for nothing alike. */
  score: number;
  start: number;
  end: number;
};

/** Shorter queries match somewhere by chance: below this many phones, no phonetic match is claimed. */
export const MIN_QUERY_PHONES = 5;

/**
 * The best place in `heard` for `wanted`: the lowest edit distance of `wanted` against any stretch of `heard`,
 * as a score (1 - distance / length of `wanted`) with that stretch's times. Null when `wanted` is too short.
 */
export function bestPhoneMatch(wanted: string[], heard: SpokenPhone[]): PhoneMatch | null {
  const m = wanted.length;
  if (m < MIN_QUERY_PHONES || heard.length === 0) return null;
  // Column by column over `heard`; each cell remembers where its alignment started in `heard`.
  let previous = new Float64Array(m + 1);
  let previousStart = new Int32Array(m + 1);
  let current = new Float64Array(m + 1);
  let currentStart = new Int32Array(m + 1);
  for (let i = 0; i <= m; i++) previous[i] = i;
  let best = { distance: Infinity, start: 0, end: 0 };
  const wantedRows = Int32Array.from(wanted, (phone) => phoneId(phone) * PHONE_COUNT);
  for (let j = 1; j <= heard.length; j++) {
    const phone = phoneId(heard[j - 1]!.phone);
    current[0] = 0; // a match may start at any phone heard
    currentStart[0] = j;
    for (let i = 1; i <= m; i++) {
      const substitute = previous[i - 1]! + SWAP_COST[wantedRows[i - 1]! + phone]!;
      const skipHeard = previous[i]! + EXTRA_PHONE_COST;
      const skipWanted = current[i - 1]! + 1;
      if (substitute <= skipHeard && substitute <= skipWanted) {
        current[i] = substitute;
        currentStart[i] = i === 1 ? j - 1 : previousStart[i - 1]!;
      } else if (skipHeard <= skipWanted) {
        current[i] = skipHeard;
        currentStart[i] = previousStart[i]!;
      } else {
        current[i] = skipWanted;
        currentStart[i] = currentStart[i - 1]!;
      }
    }
    if (current[m]! < best.distance) best = { distance: current[m]!, start: currentStart[m]!, end: j - 1 };
    [previous, current] = [current, previous];
    [previousStart, currentStart] = [currentStart, previousStart];
  }
  const first = heard[Math.min(best.start, heard.length - 1)]!;
  const last = heard[Math.max(best.end, best.start)] ?? first;
  return { score: Math.max(0, 1 - best.distance / m), start: first.start, end: last.end };
}

/**
 * How far a match stands above chance: the best match in the phones heard minus the best match in the same phones
 * reversed (as long, the same sounds, but no words in them), so long recordings, which match anything a little,
 * earn nothing for their length. On `npm run bench -- transcription` a margin of 0.15 is passed by under 5% of
 * the wrong clips.
 */
export const MIN_MATCH_MARGIN = 0.15;

export function phoneEvidence(wanted: string[], heard: SpokenPhone[]): (PhoneMatch & { margin: number }) | null {
  const match = bestPhoneMatch(wanted, heard);
  if (!match) return null;
  const chance = bestPhoneMatch(wanted, [...heard].reverse())?.score ?? 0;
  return { ...match, margin: match.score - chance };
}
