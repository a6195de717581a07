import type { ModelAdapter } from "../model-adapter.ts";
import { concat } from "./onnx-projector.ts";

/** Early fusion with the matrix written in the manifest (`projector.matrix`, rows = output dimensions). */
export const matrixProjectorAdapter: ModelAdapter = {
  embeds: [],
  async load(model) {
    const matrix = model.manifest.projector?.matrix;
    if (!matrix?.length) throw new Error("the manifest has no projector.matrix");
    const width = matrix[0]!.length;
    if (matrix.some((row) => row.length !== width)) throw new Error("projector.matrix rows differ in length");
    return {
      async project(batch) {
        return batch.map((parts) => {
          const input = concat(parts);
          if (input.length !== width) throw new Error(`shape mismatch: the projector takes ${width} values, got ${input.length}`);
          return Float32Array.from(matrix, (row) => row.reduce((sum, weight, index) => sum + weight * input[index]!, 0));
        });
      },
    };
  },
};
