import { describe, expect, it } from "vitest";
import { fuseVectors } from "../../services/models/fusion.ts";
import { cosine } from "../../services/models/vector-math.ts";

const v = (...values: number[]) => Float32Array.from(values);

describe("late fusion", () => {
  it("normalises each part before weighting, so a long vector does not dominate", () => {
    const fused = fuseVectors([{ vector: v(100, 0) }, { vector: v(0, 1) }]);
    expect(fused[0]).toBeCloseTo(Math.SQRT1_2, 5);
    expect(fused[1]).toBeCloseTo(Math.SQRT1_2, 5);
  });

  it("leans toward the heavier weight and returns a unit vector", () => {
    const fused = fuseVectors([{ vector: v(1, 0), weight: 3 }, { vector: v(0, 1), weight: 1 }]);
    expect(Math.hypot(...fused)).toBeCloseTo(1, 5);
    expect(cosine(fused, v(1, 0))).toBeGreaterThan(cosine(fused, v(0, 1)));
  });

  it("drops parts of weight 0 and refuses vectors of different sizes", () => {
    expect(Array.from(fuseVectors([{ vector: v(1, 0), weight: 0 }, { vector: v(0, 2) }]))).toEqual([0, 1]);
    expect(() => fuseVectors([{ vector: v(1, 0) }, { vector: v(1, 0, 0) }])).toThrow(/2 and 3 dimensions/);
    expect(() => fuseVectors([{ vector: v(1, 0), weight: 0 }])).toThrow(/every weight is 0/);
  });

});
