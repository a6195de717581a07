import { normalize } from "./vector-math.ts";

/**
 * Late fusion: vectors of one space (an image's frames, a text's chunks, an
 * image and its OCR text) are each L2-normalised, weighted, summed and
 * normalised again. Weights need not sum to 1; a weight of 0 drops a part.
 */
export function fuseVectors(parts: Array<{ vector: Float32Array; weight?: number }>): Float32Array {
  const used = parts.filter((part) => (part.weight ?? 1) > 0);
  if (used.length === 0) throw new Error("nothing to fuse: every weight is 0");
  const dims = used[0]!.vector.length;
  const out = new Float32Array(dims);
  for (const { vector, weight = 1 } of used) {
    if (vector.length !== dims) throw new Error(`cannot fuse vectors of ${dims} and ${vector.length} dimensions`);
    const unit = normalize(Float32Array.from(vector));
    for (let i = 0; i < dims; i++) out[i]! += weight * unit[i]!;
  }
  return normalize(out);
}

// Fusion across spaces happens at query time: normalised score fusion with a BM25 share in
// services/search/cross-modal-search.ts (`spaceWeights` and `hybrid.alpha` per request and per workflow step).
