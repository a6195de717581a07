import { expect, it } from "vitest";
import type { Modality } from "../../services/core/database.ts";
import { fuseRankings, snippetOf } from "../../services/search/cross-modal-search.ts";
import { keywordTerms } from "../../services/search/keyword-ranking.ts";
import type { VectorHit } from "../../services/search/vector-store.ts";

const hit = (assetId: string, space: string, score: number, text = "", chunk = 0, modality: Modality = "TEXT"): VectorHit => ({ assetId, space, chunk, modality, text, score });

it("normalises each space's scores, counts an asset once per space at its best chunk, and averages the spaces", () => {
  // Cosines of two models on different scales: 0.2-0.8 in one, 0.90-0.95 in the other.
  const sentence = [hit("a", "sentence", 0.8, "a0"), hit("a", "sentence", 0.7, "a1", 1), hit("b", "sentence", 0.5, "b0"), hit("c", "sentence", 0.2, "c0")];
  const imageText = [hit("b", "image-text", 0.95, "b-it"), hit("c", "image-text", 0.92), hit("a", "image-text", 0.9)];
  const fused = fuseRankings([sentence, imageText]);
  // a: 1 and 0; b: 0.5 and 1; c: 0 and 0.4 (normalised), averaged over the two spaces.
  expect(fused.map((entry) => [entry.assetId, Number(entry.score.toFixed(6))])).toEqual([
    ["b", 0.75],
    ["a", 0.5],
    ["c", 0.2],
  ]);
  expect(fused[0]).toMatchObject({ spaces: ["image-text", "sentence"], snippet: "b-it" });
  expect(fused[0]!.explain).toMatchObject({
    spaces: [
      { space: "image-text", rank: 1, score: 0.95, normalised: 1, derived: false, weight: 1 },
      { space: "sentence", rank: 2, score: 0.5, normalised: expect.closeTo(0.5, 6), derived: false, weight: 1 },
    ],
    keyword: null,
    alpha: 1,
  });
  expect(fused[1]).toMatchObject({ snippet: "a0" });
});

it("a picture found by the one space that sees pictures is not outvoted by OCR guesses that share no word with the query", () => {
  // The right drawing is first in image-text; another drawing, a little lower there, carries an OCR guess that
  // the sentence space ranks first (the only candidate it has). Plain rank fusion put the guess on top.
  const imageText = [hit("right", "image-text", 0.6, "", 0, "IMAGE"), hit("guess", "image-text", 0.55, "", 0, "IMAGE"), hit("other", "image-text", 0.1, "", 0, "IMAGE")];
  const sentence = [hit("guess", "sentence", 0.2, "O", 0, "IMAGE")];
  const fused = fuseRankings([sentence, imageText], { keyword: [], alpha: 0.5 });
  expect(fused.map((entry) => entry.assetId)).toEqual(["right", "guess", "other"]);
  expect(fused.find((entry) => entry.assetId === "guess")!.explain.spaces.find((entry) => entry.space === "sentence")).toMatchObject({ derived: true });
  // When the keyword ranking finds the words in the picture, they count in full: the sign reading KILO wins.
  const kilo = fuseRankings([sentence, imageText], { keyword: [hit("guess", "sentence", 1, "O", 0, "IMAGE")], alpha: 0.5 });
  expect(kilo[0]).toMatchObject({ assetId: "guess", explain: { keyword: { rank: 1, normalised: 1 } } });
  // Its image vector (0.9 normalised) stays its vector score; the words it shows count through the keyword share.
  expect(kilo[0]!.score).toBeCloseTo(0.5 * 0.9 + 0.5 * 1, 6);
});

it("a one-character OCR guess does not move a drawing ahead of the pictures the cross-modal space ranked above it", () => {
  // The right drawing is second in image-text; the first-ranked one there is wrong and a third carries an OCR guess
  // ("S") that both text-reading spaces rank first. As words it would count about 0.5 and pass the right one (0.36).
  const imageText = [
    hit("wrong", "image-text", 0.6, "", 0, "IMAGE"),
    hit("guess", "image-text", 0.59, "S", 1, "IMAGE"),
    hit("right", "image-text", 0.44, "", 0, "IMAGE"),
    hit("guess", "image-text", 0.4, "S", 0, "IMAGE"),
    hit("other", "image-text", 0.35, "", 0, "IMAGE"),
  ];
  const sentence = [hit("guess", "sentence", 0.3, "S", 0, "IMAGE")];
  const fused = fuseRankings([sentence, imageText], { keyword: [], alpha: 0.5, sees: (space, modality) => modality === "TEXT" || space === "image-text" });
  expect(fused.map((entry) => entry.assetId)).toEqual(["wrong", "right", "guess", "other"]);
  // Read as words ("SOS") that share nothing with the query, the match does not count either: the space that sees
  // the picture has spoken (issue #21; before, real words counted at half weight and passed the right drawing).
  const words = (text: string) => [hit("guess", "sentence", 0.3, text, 0, "IMAGE")];
  const read = fuseRankings([words("SOS"), imageText.map((entry) => (entry.assetId === "guess" ? { ...entry, text: "SOS" } : entry))], {
    keyword: [],
    alpha: 0.5,
    sees: (space, modality) => modality === "TEXT" || space === "image-text",
  });
  expect(read.map((entry) => entry.assetId)).toEqual(["wrong", "right", "guess", "other"]);
  // A guess the keyword ranking confirms ("keycap: 3" finds the drawing read as "3") counts in full.
  const confirmed = fuseRankings([sentence, imageText], { keyword: [hit("guess", "sentence", 1, "S", 0, "IMAGE")], alpha: 0.5 });
  expect(confirmed[0]!.assetId).toBe("guess");
});

it("mixes the keyword ranking by alpha, and weighs spaces with spaceWeights", () => {
  const sentence = [hit("a", "sentence", 0.9), hit("b", "sentence", 0.5)];
  const imageText = [hit("b", "image-text", 0.9), hit("a", "image-text", 0.5)];
  const keyword = [hit("b", "sentence", 3, "b words"), hit("c", "sentence", 1, "c words")];
  expect(fuseRankings([sentence, imageText]).map((entry) => entry.score)).toEqual([0.5, 0.5]);
  const weighted = fuseRankings([sentence, imageText], { spaceWeights: { "image-text": 3 } });
  expect(weighted.map((entry) => [entry.assetId, entry.score])).toEqual([
    ["b", 0.75],
    ["a", 0.25],
  ]);
  const hybrid = fuseRankings([sentence, imageText], { keyword, alpha: 0.5 });
  // c is the last of two keyword matches: min-max says 0, but a match counts at least 1 / its rank.
  expect(hybrid.map((entry) => [entry.assetId, entry.score])).toEqual([
    ["b", 0.5 * 0.5 + 0.5 * 1],
    ["a", 0.5 * 0.5],
    ["c", 0.5 * 0.5],
  ]);
  expect(hybrid[0]!.explain).toMatchObject({ vectorScore: 0.5, alpha: 0.5, fused: 0.75, keyword: { rank: 1, score: 3, normalised: 1 } });
  // alpha 0: the words alone.
  expect(fuseRankings([sentence, imageText], { keyword, alpha: 0 })[0]!.assetId).toBe("b");
});

it("picks the line of a long text that shares most words with the query, and cuts it to a readable length", () => {
  expect(snippetOf("Invoice 2024\nTotal due: 300 EUR\nThank you", "what is the total due")).toBe("Total due: 300 EUR");
  expect(snippetOf("first line\nsecond line")).toBe("first line");
  const long = snippetOf("x".repeat(1000));
  expect(long.length).toBe(280);
  expect(long.endsWith("…")).toBe(true);
});

it("BM25 looks for the query's words but not lone letters, which matched one-letter OCR guesses", () => {
  expect(keywordTerms("four o’clock")).toBe("four clock");
  expect(keywordTerms("men’s room")).toBe("men room");
  expect(keywordTerms("x-ray")).toBe("ray");
  // Digits are words ("gate 5"); so is one character of a script without case.
  expect(keywordTerms("gate 5")).toBe("gate 5");
  expect(keywordTerms("猫")).toBe("猫");
  expect(keywordTerms("a")).toBe("");
});

it("words read from a picture that share no query word do not lift it past pictures the space that sees it ranks higher", () => {
  // Held-out text -> image (issue #21): a bento box whose OCR reads "eee" sat first for queries it has nothing to do
  // with, because its reading is a generic text vector close to every label, and pushed the right drawing out of the top 10.
  const imageText = [
    hit("eee", "image-text", 0.5, "eee", 1, "IMAGE"),
    hit("near", "image-text", 0.3, "", 0, "IMAGE"),
    hit("right", "image-text", 0.26, "", 0, "IMAGE"),
    hit("eee", "image-text", 0.2, "", 0, "IMAGE"),
    hit("far", "image-text", 0.1, "", 0, "IMAGE"),
  ];
  const sentence = [hit("eee", "sentence", 0.4, "eee", 1, "IMAGE")];
  const sees = (space: string, modality: Modality) => modality === "TEXT" || (space === "image-text" && modality !== "AUDIO");
  const fused = fuseRankings([imageText, sentence], { keyword: [], alpha: 0.5, sees });
  expect(fused.map((entry) => entry.assetId)).toEqual(["near", "right", "eee", "far"]);
  // Confirmed by the keyword ranking, the same reading counts in full.
  const keyword = [{ ...hit("eee", "sentence", 3, "eee", 1, "IMAGE") }];
  expect(fuseRankings([imageText, sentence], { keyword, alpha: 0.5, sees })[0]!.assetId).toBe("eee");
  // Where no space reached sees the asset (a clip found by its transcript), the reading is all there is: it counts, at half.
  const clip = [hit("talk", "sentence", 0.4, "a transcript", 1, "AUDIO"), hit("note", "sentence", 0.2, "a note", 0, "TEXT")];
  const byTranscript = fuseRankings([clip], { keyword: [], alpha: 0.5, sees });
  expect(byTranscript.find((entry) => entry.assetId === "talk")!.explain.vectorScore).toBe(0.5);
});
