export const RECALL_KS = [1, 5, 10] as const;
export type Recall = { r1: number; r5: number; r10: number; queries: number; candidates: number };

/**
 * Each query's rank: how many candidates are strictly more similar (dot product of unit vectors) than the
 * query's own concept (0: first; ties count in the query's favour).
 */
export function queryRanks(queries: Float32Array[], queryConcepts: string[], candidates: Float32Array[], candidateConcepts: string[]): number[] {
  return queries.map((query, q) => {
    const scores = candidates.map((candidate) => {
      let dot = 0;
      for (let d = 0; d < query.length; d++) dot += query[d]! * candidate[d]!;
      return dot;
    });
    const own = candidateConcepts.indexOf(queryConcepts[q]!);
    if (own < 0) throw new Error(`no candidate for ${queryConcepts[q]}`);
    return scores.filter((score) => score > scores[own]!).length;
  });
}

/**
 * Recall@k: the share of queries whose own concept is among the k most
 * similar candidates (dot product of unit vectors).
 */
export function recallAtK(queries: Float32Array[], queryConcepts: string[], candidates: Float32Array[], candidateConcepts: string[]): Recall {
  return recallOfRanks(queryRanks(queries, queryConcepts, candidates, candidateConcepts), candidates.length);
}

/** Recall@k from each query's rank (0: first). */
export function recallOfRanks(ranks: number[], candidates: number): Recall {
  const hits = { 1: 0, 5: 0, 10: 0 };
  for (const rank of ranks) for (const k of RECALL_KS) if (rank < k) hits[k]++;
  const round = (value: number) => Math.round((value / ranks.length) * 10_000) / 10_000;
  return { r1: round(hits[1]), r5: round(hits[5]), r10: round(hits[10]), queries: ranks.length, candidates };
}
