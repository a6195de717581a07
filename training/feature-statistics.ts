/**
 * Per-feature mean and standard deviation over `rows`, then every row
 * standardised in place with them. Features that never vary (std 0) get std 1.
 */
export function standardiseFeatures(rows: Float32Array[]): { mean: Float32Array; std: Float32Array } {
  const size = rows[0]!.length;
  const sum = new Float64Array(size);
  const squares = new Float64Array(size);
  for (const row of rows) {
    for (let i = 0; i < size; i++) {
      sum[i]! += row[i]!;
      squares[i]! += row[i]! * row[i]!;
    }
  }
  const mean = new Float32Array(size);
  const std = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    mean[i] = sum[i]! / rows.length;
    std[i] = Math.sqrt(Math.max(0, squares[i]! / rows.length - mean[i]! * mean[i]!)) || 1;
    if (std[i]! < 1e-6) std[i] = 1;
  }
  for (const row of rows) for (let i = 0; i < size; i++) row[i] = (row[i]! - mean[i]!) / std[i]!;
  return { mean, std };
}
