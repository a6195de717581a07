import * as ort from "onnxruntime-node";
import type { ModelAdapter } from "../model-adapter.ts";
import { rows } from "../vector-math.ts";

/**
 * Early fusion / input projection through an ONNX graph: the vectors of the
 * manifest's `projector.from` spaces, concatenated, in; one vector of the
 * output space out (what `tessera projector train` writes).
 */
export const onnxProjectorAdapter: ModelAdapter = {
  embeds: [],
  async load(model, context) {
    const session = await context.sessions.get(model.manifest.name, model.files.model!);
    const input = model.manifest.inputs.embeds ?? session.inputNames[0]!;
    const output = model.manifest.outputs.embeds ?? session.outputNames[0]!;
    return {
      async project(batch) {
        const joined = batch.map(concat);
        const width = joined[0]!.length;
        const data = new Float32Array(batch.length * width);
        joined.forEach((vector, index) => data.set(vector, index * width));
        const result = await session.run({ [input]: new ort.Tensor("float32", data, [batch.length, width]) });
        return rows(result[output]!.data as Float32Array, batch.length);
      },
    };
  },
};

export function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
