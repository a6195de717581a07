import { expect, it } from "vitest";
import { fuseRankings, snippetOf } from "../../services/search/cross-modal-search.ts";
import type { VectorHit } from "../../services/search/vector-store.ts";

const hit = (assetId: string, space: string, text = "", chunk = 0): VectorHit => ({ assetId, space, chunk, modality: "TEXT", text, score: 0 });

it("fuses per-space rankings by reciprocal rank, counting each asset once per space at its best chunk", () => {
  const sentence = [hit("a", "sentence", "a0"), hit("a", "sentence", "a1", 1), hit("b", "sentence", "b0")];
  const imageText = [hit("c", "image-text"), hit("b", "image-text", "b-it")];
  const fused = fuseRankings([sentence, imageText]);
  expect(fused.map((entry) => [entry.assetId, Number(entry.score.toFixed(6))])).toEqual([
    ["b", Number((1 / 62 + 1 / 62).toFixed(6))],
    ["a", Number((1 / 61).toFixed(6))],
    ["c", Number((1 / 61).toFixed(6))],
  ]);
  // b: second in both spaces; spaces listed best first, ties in query order; snippet from its best-ranked chunk with text.
  expect(fused[0]).toMatchObject({ spaces: ["sentence", "image-text"], snippet: "b0" });
  expect(fused[1]).toMatchObject({ snippet: "a0" });
  expect(fused[2]).toMatchObject({ snippet: null });
});

it("weighs each space's vote: a weight of 2 counts a space twice, and unnamed spaces count once", () => {
  const sentence = [hit("a", "sentence"), hit("b", "sentence")];
  const imageText = [hit("b", "image-text"), hit("a", "image-text")];
  expect(fuseRankings([sentence, imageText]).map((entry) => entry.score)).toEqual([1 / 61 + 1 / 62, 1 / 61 + 1 / 62]);
  const fused = fuseRankings([sentence, imageText], undefined, { "image-text": 2 });
  expect(fused.map((entry) => [entry.assetId, entry.score])).toEqual([
    ["b", 1 / 62 + 2 / 61],
    ["a", 1 / 61 + 2 / 62],
  ]);
});

it("picks the line of a long text that shares most words with the query, and cuts it to a readable length", () => {
  expect(snippetOf("Invoice 2024\nTotal due: 300 EUR\nThank you", "what is the total due")).toBe("Total due: 300 EUR");
  expect(snippetOf("first line\nsecond line")).toBe("first line");
  const long = snippetOf("x".repeat(1000));
  expect(long.length).toBe(280);
  expect(long.endsWith("…")).toBe(true);
});
