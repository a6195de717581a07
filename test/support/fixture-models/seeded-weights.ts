/** Deterministic weights: the same seed gives the same model, so tests can compare runs. */
export function seededWeights(count: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(count);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = (((state >>> 0) / 0xffffffff) * 2 - 1) * scale;
  }
  return out;
}
