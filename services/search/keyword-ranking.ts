import type { VectorHit } from "./vector-store.ts";

/**
 * The words of a text query that BM25 looks for: all but lone letters, which are pieces of elisions and compounds
 * ("o’clock", "men’s", "x-ray") and matched the one-letter OCR guesses on drawings ("O", "S", "X") instead of
 * anything meant (issue #21). Digits stay ("gate 5"), as do scripts without case, whose one character is a word.
 */
export function keywordTerms(text: string): string {
  return (text.match(/[\p{L}\p{N}]+/gu) ?? []).filter((term) => !/^[\p{Lu}\p{Ll}]$/u.test(term)).join(" ");
}

/** A keyword match; `normalised` when already normalised (merged from several spaces), else min-max over the list. */
export type KeywordHit = VectorHit & { normalised?: number };

/**
 * One keyword ranking out of one per space: each chunk's score normalised within its list (BM25 statistics
 * differ between spaces), an asset's best chunk kept, best first.
 */
export function mergeKeywordRankings(rankings: VectorHit[][]): KeywordHit[] {
  if (rankings.length === 1) return rankings[0]!;
  const merged: Array<VectorHit & { normalised: number }> = [];
  for (const ranking of rankings) {
    const scores = ranking.map((hit) => hit.score);
    const [low, high] = [Math.min(...scores), Math.max(...scores)];
    for (const hit of ranking) merged.push({ ...hit, normalised: high > low ? (hit.score - low) / (high - low) : 1 });
  }
  return merged.sort((a, b) => b.normalised - a.normalised || b.score - a.score);
}
