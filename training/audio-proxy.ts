/**
 * `tsx training/audio-proxy.ts`: the check used to choose the audio
 * projector's settings without the evaluation voice. Each training voice in
 * turn is left out: prototypes are built from the other voices' clips (the
 * training voices, plus AUDIO_PROXY_EXTRA extra voices when set) and the
 * left-out voice's clips must find their own concept's prototype among the
 * training concepts (every AUDIO_PROXY_EVERY-th one, to keep it short).
 * Optionally (AUDIO_PROXY_WHITEN=eps) inputs are whitened by the
 * within-concept covariance first, so directions in which voices differ
 * count less than directions in which words differ.
 * Clip vectors are cached per voice in os.tmpdir().
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { TRAIN_VOICES } from "./audio-features.ts";
import { loadEmojiConcepts } from "./emoji-concepts.ts";
import { speak, WakewordEmbedder, type SpeakerVoice } from "./spoken-labels.ts";

/** Candidate extra voices: none is the evaluation voice (en-gb-x-rp+f4). */
const EXTRA_VOICES: SpeakerVoice[] = [
  { voice: "en-gb-scotland+m1", speed: 165, pitch: 45 },
  { voice: "en-us+f5", speed: 155, pitch: 65 },
  { voice: "en-029+m2", speed: 170, pitch: 50 },
  { voice: "en-gb-x-gbclan+f1", speed: 145, pitch: 55 },
  { voice: "en-gb-x-gbcwmd+m4", speed: 175, pitch: 35 },
  { voice: "en-us+m7", speed: 150, pitch: 50 },
];

const every = Number(process.env.AUDIO_PROXY_EVERY ?? 3);
const extraCount = Number(process.env.AUDIO_PROXY_EXTRA ?? 0);
const whitenEps = process.env.AUDIO_PROXY_WHITEN ? Number(process.env.AUDIO_PROXY_WHITEN) : null;
const concepts = loadEmojiConcepts()
  .filter((concept) => concept.split === "train")
  .filter((_, i) => i % every === 0);

async function voiceVectors(voice: SpeakerVoice): Promise<Float32Array[]> {
  const file = path.join(os.tmpdir(), `tessera-audio-proxy-${voice.voice}-${voice.speed}-${voice.pitch}-${every}.bin`);
  try {
    const buffer = await fs.readFile(file);
    const all = new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 4);
    return concepts.map((_, i) => all.slice(i * 96, (i + 1) * 96));
  } catch {
    const embedder = await WakewordEmbedder.create();
    const out: Float32Array[] = [];
    const speaking = concepts.map(() => null as Promise<Float32Array> | null);
    for (let i = 0; i < concepts.length; i++) {
      for (let ahead = 0; ahead < 4; ahead++) if (i + ahead < concepts.length) speaking[i + ahead] ??= speak(concepts[i + ahead]!.label, voice);
      out.push(await embedder.embedClip(await speaking[i]!));
    }
    const all = new Float32Array(out.length * 96);
    out.forEach((row, i) => all.set(row, i * 96));
    await fs.writeFile(file, all);
    return out;
  }
}

const unit = (v: Float64Array) => {
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
};

/** Symmetric inverse square root by power-free Jacobi (small: 96 x 96). */
function inverseSqrt(matrix: Float64Array, n: number, eps: number): Float64Array {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off < 1e-20) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-16) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!, akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!, aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!, vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  let trace = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i]! / n;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += (v[i * n + k]! * v[j * n + k]!) / Math.sqrt(Math.max(0, a[k * n + k]!) + eps * trace);
      out[i * n + j] = sum;
    }
  return out;
}

const voices = [...TRAIN_VOICES, ...EXTRA_VOICES.slice(0, extraCount)];
const vectors: Float32Array[][] = [];
for (const voice of voices) vectors.push(await voiceVectors(voice));
console.error(`${concepts.length} concepts, ${voices.length} voices`);

const n = 96;
const results: Array<{ left: string; top1: number; top10: number }> = [];
for (let left = 0; left < TRAIN_VOICES.length; left++) {
  const used = voices.map((_, i) => i).filter((i) => i !== left);
  // Standardise with the used voices' statistics, as the projector does.
  const mean = new Float64Array(n);
  const std = new Float64Array(n);
  const rows = used.flatMap((v) => vectors[v]!);
  for (const row of rows) for (let d = 0; d < n; d++) mean[d]! += row[d]! / rows.length;
  for (const row of rows) for (let d = 0; d < n; d++) std[d]! += (row[d]! - mean[d]!) ** 2 / rows.length;
  for (let d = 0; d < n; d++) std[d] = Math.sqrt(std[d]!) || 1;
  const prepare = (row: Float32Array) => unit(Float64Array.from(row, (x, d) => (x - mean[d]!) / std[d]!));
  let transform = (x: Float64Array) => x;
  if (whitenEps !== null) {
    const within = new Float64Array(n * n);
    let count = 0;
    concepts.forEach((_, c) => {
      const prepared = used.map((v) => prepare(vectors[v]![c]!));
      const centre = new Float64Array(n);
      for (const p of prepared) for (let d = 0; d < n; d++) centre[d]! += p[d]! / prepared.length;
      for (const p of prepared) {
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) within[i * n + j]! += (p[i]! - centre[i]!) * (p[j]! - centre[j]!);
        count++;
      }
    });
    for (let i = 0; i < within.length; i++) within[i]! /= count;
    const w = inverseSqrt(within, n, whitenEps);
    transform = (x) => {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let j = 0; j < n; j++) sum += w[i * n + j]! * x[j]!;
        out[i] = sum;
      }
      return unit(out);
    };
  }
  const prototypes = concepts.map((_, c) => {
    const sum = new Float64Array(n);
    for (const v of used) {
      const p = transform(prepare(vectors[v]![c]!));
      for (let d = 0; d < n; d++) sum[d]! += p[d]!;
    }
    return unit(sum);
  });
  let top1 = 0;
  let top10 = 0;
  concepts.forEach((_, c) => {
    const q = transform(prepare(vectors[left]![c]!));
    const score = (k: number) => prototypes[k]!.reduce((s, x, d) => s + x * q[d]!, 0);
    const own = score(c);
    let better = 0;
    for (let k = 0; k < concepts.length && better < 10; k++) if (k !== c && score(k) > own) better++;
    if (better === 0) top1++;
    if (better < 10) top10++;
  });
  results.push({ left: voices[left]!.voice, top1: +(top1 / concepts.length).toFixed(3), top10: +(top10 / concepts.length).toFixed(3) });
}
const average = (key: "top1" | "top10") => +(results.reduce((s, r) => s + r[key], 0) / results.length).toFixed(3);
console.log(JSON.stringify({ concepts: concepts.length, voices: voices.length, whiten: whitenEps, top1: average("top1"), top10: average("top10"), perVoice: results }));
