/** L2-normalises in place and returns the vector; a zero vector stays zero. */
export function normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i]! /= norm;
  return vector;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

/** Mean of equally sized vectors (pooling frames or windows). */
export function meanPool(vectors: Float32Array[]): Float32Array {
  if (vectors.length === 0) throw new Error("nothing to pool");
  const out = new Float32Array(vectors[0]!.length);
  for (const vector of vectors) for (let i = 0; i < out.length; i++) out[i]! += vector[i]!;
  for (let i = 0; i < out.length; i++) out[i]! /= vectors.length;
  return out;
}

/** Splits a flat [batch, dims] tensor's data into one vector per row. */
export function rows(data: Float32Array, batch: number): Float32Array[] {
  const dims = data.length / batch;
  return Array.from({ length: batch }, (_, index) => data.slice(index * dims, (index + 1) * dims));
}
