import { expect, it } from "vitest";
import { TesseraError, ErrorCode } from "../../services/core/errors.ts";
import { HEARD_WORDS_WEIGHT, withHeardWords, type SearchHit } from "../../services/search/cross-modal-search.ts";
import { hearQuery, MAX_HEARD_QUERY_SECONDS } from "../../services/search/heard-query.ts";

const limits = { MEDIA_TOOL_TIMEOUT_MS: 5000, SEARCH_MAX_TEXT_CHARS: 4000 };

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

it("hears a query clip with the served transcriber, else the offline recogniser, on its first seconds only", async () => {
  const clip = new Float32Array((MAX_HEARD_QUERY_SECONDS + 5) * 16000);
  const served = await hearQuery({ transcribe: async (samples) => `heard ${samples.length}` }, clip, limits);
  expect(served).toBe(`heard ${MAX_HEARD_QUERY_SECONDS * 16000}`);
  const asked: number[] = [];
  const offline = await hearQuery({ transcribe: async () => null }, clip, limits, async (samples, options) => {
    asked.push(samples.length, options.timeoutMs);
    return { words: [{ token: "red", start: 0, end: 0.3 }, { token: "apple", start: 0.3, end: 0.8 }] };
  });
  expect(offline).toBe("red apple");
  expect(asked).toEqual([MAX_HEARD_QUERY_SECONDS * 16000, limits.MEDIA_TOOL_TIMEOUT_MS]);
  // Nothing heard, an encoder that cannot transcribe, or a recogniser that gives up: the clip's sound alone.
  expect(await hearQuery({ transcribe: async () => null }, clip, limits, async () => ({ words: [] }))).toBeUndefined();
  expect(await hearQuery({}, clip, limits)).toBeUndefined();
  const timeout = async () => {
    throw new TesseraError(ErrorCode.TIMEOUT, "pocketsphinx_continuous ran past its time limit");
  };
  expect(await hearQuery({ transcribe: async () => null }, clip, limits, timeout)).toBeUndefined();
  // A bug is not swallowed.
  await expect(hearQuery({ transcribe: async () => null }, clip, limits, async () => Promise.reject(new RangeError("bug")))).rejects.toThrow(RangeError);
});

it("runs at most two offline recognitions at once", async () => {
  let running = 0;
  let most = 0;
  const recognize = async () => {
    most = Math.max(most, ++running);
    await new Promise((resolve) => setTimeout(resolve, 20));
    running--;
    return { words: [{ token: "word", start: 0, end: 1 }] };
  };
  const heard = await Promise.all(Array.from({ length: 6 }, () => hearQuery({ transcribe: async () => null }, new Float32Array(1600), limits, recognize)));
  expect(heard).toEqual(Array(6).fill("word"));
  expect(most).toBe(2);
});
