import { expect, it } from "vitest";
import { fromWire, toWire } from "../../services/models/remote-model-calls.ts";

it("carries typed arrays through JSON exactly: pixels, samples, vectors, nested in objects and arrays", () => {
  const pixels = Buffer.from([0, 1, 2, 254, 255]);
  // A view at an odd offset into a larger buffer, as sharp and Buffer pools hand out.
  const samples = new Float32Array(new Float32Array([9, 0.25, -1, 1e-7, 3]).buffer, 4, 3);
  const input = { image: { rgb: pixels, width: 5, height: 1 }, clips: [samples], label: "x", rows: [[new Float32Array([1, 2])]] };
  const back = fromWire(JSON.parse(JSON.stringify(toWire(input)))) as typeof input;
  expect(Buffer.isBuffer(back.image.rgb) && back.image.rgb.equals(pixels)).toBe(true);
  expect(back.clips[0]).toBeInstanceOf(Float32Array);
  expect(Array.from(back.clips[0]!)).toEqual(Array.from(samples));
  expect(Array.from(back.rows[0]![0]!)).toEqual([1, 2]);
  expect(back).toMatchObject({ label: "x", image: { width: 5, height: 1 } });
});
