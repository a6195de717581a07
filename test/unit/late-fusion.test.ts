import { describe, expect, it } from "vitest";
import { fuseScores, fuseVectors, resolveFusionWeights } from "../../services/worker/models/fusion.ts";
import { cosine } from "../../services/worker/models/vector-math.ts";

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

  it("fuses scores across spaces with per-request weights over the defaults", () => {
    const weights = resolveFusionWeights({ audio: 0 });
    expect(fuseScores({ "image-text": 0.8, audio: 0.1 }, weights)).toBeCloseTo(0.8, 5);
    expect(fuseScores({ "image-text": 0.8, sentence: 0.4 })).toBeCloseTo(0.6, 5);
    expect(() => resolveFusionWeights({ sentence: -1 })).toThrow(/>= 0/);
  });
});
