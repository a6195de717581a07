import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { TesseraError } from "../../services/core/errors.ts";
import { PrototypeProjector } from "../../training/projector/projector-model.ts";
import { readPairsFile, trainProjector, writeProjector, type ProjectorPair } from "../../training/projector/train-projector.ts";
import { seededRandom } from "../../training/seeded-random.ts";

const SIZE = 12;

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
}

function unit(values: number[]): Float32Array {
  const norm = Math.hypot(...values);
  return Float32Array.from(values.map((v) => v / norm));
}

/** A random orthogonal matrix (Gram-Schmidt on Gaussian rows). */
function randomRotation(random: () => number): number[][] {
  const rows: number[][] = [];
  while (rows.length < SIZE) {
    let row = Array.from({ length: SIZE }, () => gaussian(random));
    for (const done of rows) {
      const dot = row.reduce((sum, v, i) => sum + v * done[i]!, 0);
      row = row.map((v, i) => v - dot * done[i]!);
    }
    rows.push(Array.from(unit(row)));
  }
  return rows;
}

function rotate(rotation: number[][], x: Float32Array): Float32Array {
  return Float32Array.from(rotation.map((row) => row.reduce((sum, v, i) => sum + v * x[i]!, 0)));
}

function syntheticPairs(count: number, rotation: number[][], random: () => number): ProjectorPair[] {
  return Array.from({ length: count }, (_, i) => {
    const from = unit(Array.from({ length: SIZE }, () => gaussian(random)));
    return { from, to: rotate(rotation, from), key: `p${i}` };
  });
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return dot / Math.sqrt(na * nb);
}

describe("projector training", () => {
  const random = seededRandom(42);
  const rotation = randomRotation(random);
  const train = syntheticPairs(1500, rotation, random);
  const unseen = syntheticPairs(200, rotation, random);

  it("learns a known rotation with MSE + cosine, and the ONNX export applies it to unseen vectors", async () => {
    const { model, report } = await trainProjector(train, { kind: "linear", loss: "mse-cosine", steps: 600, batchSize: 128, learningRate: 5e-3 });
    expect(report.validationMeanCosine).toBeGreaterThan(0.99);

    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "projector-"));
    const { graphPath, manifestPath } = await writeProjector(model, report, { outDir: dir, name: "test-projector", from: "audio", to: "image-text", modelsDir: dir });
    const session = await ort.InferenceSession.create(graphPath);
    const input = new Float32Array(unseen.length * SIZE);
    unseen.forEach((pair, i) => input.set(pair.from, i * SIZE));
    const output = await session.run({ embeds: new ort.Tensor("float32", input, [unseen.length, SIZE]) });
    const projected = output.projected_embeds!.data as Float32Array;
    const cosines = unseen.map((pair, i) => cosine(projected.subarray(i * SIZE, (i + 1) * SIZE), pair.to));
    expect(Math.min(...cosines)).toBeGreaterThan(0.98);
    // A projector that ignored the rotation would land far from the targets.
    const unrotated = unseen.map((pair, i) => cosine(projected.subarray(i * SIZE, (i + 1) * SIZE), pair.from));
    expect(unrotated.reduce((a, b) => a + b, 0) / unrotated.length).toBeLessThan(0.5);

    const manifest = parse(await fs.readFile(manifestPath, "utf8"));
    expect(manifest).toMatchObject({ name: "test-projector", task: "project", output: { space: "image-text", dimensions: SIZE }, projector: { from: ["audio"] } });
  }, 120_000);

  it("learns the same rotation with InfoNCE: each unseen vector retrieves its own rotated partner", async () => {
    const { model } = await trainProjector(train, { kind: "mlp", loss: "infonce", steps: 400, batchSize: 128, hiddenSize: 64 });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "projector-"));
    const { graphPath } = await writeProjector(model, { pairs: 0, trainPairs: 0, validationPairs: 0, validationMeanCosine: 0, validationRecallAt1: 0, finalLoss: 0, seconds: 0, validation: "held-out keys" }, { outDir: dir, name: "p", from: "audio", to: "image-text", modelsDir: dir });
    const session = await ort.InferenceSession.create(graphPath);
    const input = new Float32Array(unseen.length * SIZE);
    unseen.forEach((pair, i) => input.set(pair.from, i * SIZE));
    const projected = (await session.run({ embeds: new ort.Tensor("float32", input, [unseen.length, SIZE]) })).projected_embeds!.data as Float32Array;
    let hits = 0;
    unseen.forEach((_, i) => {
      const scores = unseen.map((pair) => cosine(projected.subarray(i * SIZE, (i + 1) * SIZE), pair.to));
      if (scores.indexOf(Math.max(...scores)) === i) hits++;
    });
    expect(hits / unseen.length).toBeGreaterThan(0.95);
  }, 120_000);

  it("prototype kind: a new noisy recording of a known key lands on that key's target, and the ONNX export computes the same", async () => {
    // 150 keys, each a base vector heard as 4 noisy "recordings"; targets are unrelated random vectors (no map to fit).
    const bases = Array.from({ length: 150 }, () => unit(Array.from({ length: SIZE }, () => gaussian(random))));
    const targets = bases.map(() => unit(Array.from({ length: 16 }, () => gaussian(random))));
    const noisy = (base: Float32Array) => unit(Array.from(base, (v) => v + 0.12 * gaussian(random)));
    const pairs = bases.flatMap((base, k) => Array.from({ length: 4 }, () => ({ from: noisy(base), to: targets[k]!, key: `k${k}` })));
    const { model, report } = await trainProjector(pairs, { kind: "prototype" });
    expect(model).toBeInstanceOf(PrototypeProjector);
    expect(report.validation).toBe("leave-one-out");
    expect(report.validationRecallAt1).toBeGreaterThan(0.9);

    const fresh = bases.map(noisy);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "projector-"));
    const { graphPath, manifestPath } = await writeProjector(model, report, { outDir: dir, name: "proto", from: "audio", to: "image-text", modelsDir: dir });
    const session = await ort.InferenceSession.create(graphPath);
    const input = new Float32Array(fresh.length * SIZE);
    fresh.forEach((vector, i) => input.set(vector, i * SIZE));
    const projected = (await session.run({ embeds: new ort.Tensor("float32", input, [fresh.length, SIZE]) })).projected_embeds!.data as Float32Array;
    const direct = (model as PrototypeProjector).projectRows(fresh);
    let hits = 0;
    fresh.forEach((_, i) => {
      const row = projected.subarray(i * 16, (i + 1) * 16);
      expect(cosine(row, direct[i]!)).toBeGreaterThan(0.9999);
      const scores = targets.map((target) => cosine(row, target));
      if (scores.indexOf(Math.max(...scores)) === i) hits++;
    });
    expect(hits / fresh.length).toBeGreaterThan(0.9);
    expect(parse(await fs.readFile(manifestPath, "utf8"))).toMatchObject({ output: { dimensions: 16 } });
  }, 120_000);

  it("rejects a pairs file with mismatched sizes or bad lines with BAD_USER_INPUT and trains nothing", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "projector-"));
    const good = train.slice(0, 10).map((pair) => JSON.stringify({ from: Array.from(pair.from), to: Array.from(pair.to) }));
    const mismatched = path.join(dir, "mismatched.jsonl");
    await fs.writeFile(mismatched, [...good, JSON.stringify({ from: [1, 2], to: [3, 4] })].join("\n"));
    await expect(readPairsFile(mismatched)).rejects.toMatchObject({ code: "BAD_USER_INPUT", details: { pair: 11 } });
    const notJson = path.join(dir, "not-json.jsonl");
    await fs.writeFile(notJson, [...good, "{oops"].join("\n"));
    await expect(readPairsFile(notJson)).rejects.toBeInstanceOf(TesseraError);
    await expect(readPairsFile(path.join(dir, "missing.jsonl"))).rejects.toMatchObject({ code: "BAD_USER_INPUT" });
    await expect(readPairsFile(notJson)).rejects.toMatchObject({ details: { line: 11 } });
    expect(await fs.readdir(dir)).toEqual(["mismatched.jsonl", "not-json.jsonl"]);
  });

  it("refuses to write a projector into an unknown space with BAD_USER_INPUT, and writes nothing", async () => {
    const { model, report } = await trainProjector(train.slice(0, 64), { kind: "linear", loss: "mse-cosine", steps: 2 });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "projector-"));
    const outDir = path.join(dir, "out");
    await expect(writeProjector(model, report, { outDir, name: "p", from: "smell", to: "image-text", modelsDir: dir })).rejects.toMatchObject({
      code: "BAD_USER_INPUT",
    });
    await expect(fs.access(outDir)).rejects.toThrow();
    const written = await writeProjector(model, report, { outDir, name: "p", from: "audio", to: "image-text", modelsDir: dir, forModel: "tessera-emoji-clip" });
    expect(parse(await fs.readFile(written.manifestPath, "utf8")).projector).toEqual({ from: ["audio"], for: "tessera-emoji-clip" });
  });
});
