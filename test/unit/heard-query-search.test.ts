import { expect, it } from "vitest";
import { TesseraError, ErrorCode } from "../../services/core/errors.ts";
import { HEARD_WORDS_WEIGHT, withHeardWords, type SearchHit } from "../../services/search/cross-modal-search.ts";
import { hearQuery, MAX_HEARD_QUERY_SECONDS } from "../../services/search/heard-query.ts";

const limits = { SEARCH_MAX_TEXT_CHARS: 4000 };

const hit = (assetId: string, score: number, spaces: string[]): SearchHit => ({
  assetId,
  modality: "IMAGE",
  score,
  snippet: null,
  spaces,
  explain: { spaces: [], keyword: null, vectorScore: score, alpha: 1, fused: score },
  segments: [],
});

it("an audio query's words lift the hits they find, at HEARD_WORDS_WEIGHT, without outvoting what the clip is sure of", () => {
  const byClip = [hit("clip-sure", 1, ["image-text"]), hit("both", 0.3, ["image-text"]), hit("clip-only", 0.2, ["image-text"])];
  const byWords = [hit("both", 1, ["sentence", "image-text"]), hit("words-only", 0.8, ["sentence"]), hit("clip-sure", 0.1, ["sentence"])];
  const merged = withHeardWords(byClip, byWords, "red apple", 10);
  expect(merged.map((entry) => [entry.assetId, entry.score])).toEqual([
    ["clip-sure", 1],
    ["both", HEARD_WORDS_WEIGHT],
    ["words-only", HEARD_WORDS_WEIGHT * 0.8],
    ["clip-only", 0.2],
  ]);
  expect(merged[1]).toMatchObject({ spaces: ["image-text", "sentence"], explain: { heard: { text: "red apple", score: 1 }, fused: 0.3 } });
  expect(merged[0]!.explain.heard).toEqual({ text: "red apple", score: 0.1 });
  expect(withHeardWords(byClip, byWords, "red apple", 2).map((entry) => entry.assetId)).toEqual(["clip-sure", "both"]);
});

it("hears a query clip with the served transcriber only, on its first seconds", async () => {
  const clip = new Float32Array((MAX_HEARD_QUERY_SECONDS + 5) * 16000);
  const served = await hearQuery({ transcribe: async (samples) => `heard ${samples.length}` }, clip, limits);
  expect(served).toBe(`heard ${MAX_HEARD_QUERY_SECONDS * 16000}`);
  // No served transcriber (the runtime answers null), nothing heard, an encoder that cannot transcribe, or a
  // transcriber that gives up: the clip's sound alone. pocketsphinx is never run on a query.
  expect(await hearQuery({ transcribe: async () => null }, clip, limits)).toBeUndefined();
  expect(await hearQuery({ transcribe: async () => "  " }, clip, limits)).toBeUndefined();
  expect(await hearQuery({}, clip, limits)).toBeUndefined();
  const timeout = async () => {
    throw new TesseraError(ErrorCode.TIMEOUT, "the transcription model ran past its time limit");
  };
  expect(await hearQuery({ transcribe: timeout }, clip, limits)).toBeUndefined();
  // A bug is not swallowed.
  await expect(hearQuery({ transcribe: async () => Promise.reject(new RangeError("bug")) }, clip, limits)).rejects.toThrow(RangeError);
});
