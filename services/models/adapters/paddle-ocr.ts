import type { DecodedImage } from "../../assets/decoded-media.ts";
import fs from "node:fs/promises";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import type { ModelAdapter } from "../model-adapter.ts";
import type { OcrLine } from "../model-runtime.ts";

type Box = { x: number; y: number; width: number; height: number };

/**
 * PaddleOCR's drop_score. Below it a "line" is the recogniser guessing at a shape (an icon read as "O" at
 * 0.2); such guesses would become searchable text, and a sentence vector, for a picture with no words.
 */
const MIN_LINE_CONFIDENCE = 0.5;

/**
 * PP-OCR (v4): a DB text detector finds line boxes in a probability map, a
 * CTC recogniser reads each box. Pre- and post-processing follow PaddleOCR's
 * defaults (det: longest side <= 960, multiple of 32, ImageNet mean/std;
 * map threshold 0.3, box score 0.6, unclip 1.5; rec: height 48, (x-0.5)/0.5;
 * lines read with a confidence under 0.5 are dropped, PaddleOCR's drop_score).
 */
export const paddleOcrAdapter: ModelAdapter = {
  embeds: [],
  async load(model, context) {
    const { name, inputs, outputs, preprocessing } = model.manifest;
    const [detector, recognizer, keysText] = await Promise.all([
      context.sessions.get(name, model.files.detector!),
      context.sessions.get(name, model.files.recognizer!),
      fs.readFile(model.files.keys!, "utf8"),
    ]);
    // Index 0 is CTC's blank; the dictionary follows, then a space.
    const alphabet = ["", ...keysText.split(/\r?\n/).filter((line, index, all) => line !== "" || index < all.length - 1), " "];
    const maxSide = preprocessing.image?.width ?? 960;
    const names = {
      detIn: inputs.detector ?? "x",
      detOut: outputs.detector ?? "sigmoid_0.tmp_0",
      recIn: inputs.recognizer ?? "x",
      recOut: outputs.recognizer ?? "softmax_11.tmp_0",
    };

    async function readImage(image: DecodedImage): Promise<OcrLine[]> {
      const boxes = await detect(image);
      if (boxes.length === 0) return [];
      const lines: OcrLine[] = [];
      for (const box of boxes) {
        const { text, confidence } = await recognize(image, box);
        if (text.trim() && confidence >= MIN_LINE_CONFIDENCE) lines.push({ text: text.trim(), confidence, box });
      }
      return lines;
    }

    async function detect(image: DecodedImage): Promise<Box[]> {
      const scale = Math.min(1, maxSide / Math.max(image.width, image.height));
      const width = Math.max(32, Math.round((image.width * scale) / 32) * 32);
      const height = Math.max(32, Math.round((image.height * scale) / 32) * 32);
      const pixels = await rawRgb(image).resize(width, height, { fit: "fill" }).raw().toBuffer();
      const mean = [0.485, 0.456, 0.406];
      const std = [0.229, 0.224, 0.225];
      const data = chw(pixels, width, height, (value, channel) => (value / 255 - mean[channel]!) / std[channel]!);
      const result = await detector.run({ [names.detIn]: new ort.Tensor("float32", data, [1, 3, height, width]) });
      const map = result[names.detOut]!.data as Float32Array;
      const sx = image.width / width;
      const sy = image.height / height;
      return textBoxes(map, width, height).map((box) => clampBox(
        { x: box.x * sx, y: box.y * sy, width: box.width * sx, height: box.height * sy },
        image,
      ));
    }

    async function recognize(image: DecodedImage, box: Box) {
      const targetHeight = 48;
      const width = Math.min(2048, Math.max(16, Math.ceil((box.width / box.height) * targetHeight)));
      const pixels = await rawRgb(image)
        .extract({ left: box.x, top: box.y, width: box.width, height: box.height })
        .resize(width, targetHeight, { fit: "fill" })
        .raw()
        .toBuffer();
      // As PaddleOCR: the line keeps its aspect ratio and is padded (with 0 after normalising) to at least 320 wide.
      const paddedWidth = Math.max(320, width);
      const line = chw(pixels, width, targetHeight, (value) => (value / 255 - 0.5) / 0.5);
      const data = new Float32Array(3 * targetHeight * paddedWidth);
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < targetHeight; y++) {
          const from = (c * targetHeight + y) * width;
          data.set(line.subarray(from, from + width), (c * targetHeight + y) * paddedWidth);
        }
      }
      const result = await recognizer.run({ [names.recIn]: new ort.Tensor("float32", data, [1, 3, targetHeight, paddedWidth]) });
      const output = result[names.recOut]!;
      const [, steps, classes] = output.dims as number[];
      return ctcDecode(output.data as Float32Array, steps!, classes!, alphabet);
    }

    return {
      async readText(images) {
        const results: OcrLine[][] = [];
        for (const image of images) results.push(await readImage(image));
        return results;
      },
    };
  },
};

function rawRgb(image: DecodedImage) {
  return sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } });
}

function chw(pixels: Buffer, width: number, height: number, transform: (value: number, channel: number) => number) {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = transform(pixels[p * 3 + c]!, c);
  return out;
}

/** Connected regions of the probability map above 0.3, kept when their mean score is >= 0.6, grown by the unclip distance. */
function textBoxes(map: Float32Array, width: number, height: number): Box[] {
  const labels = new Int32Array(width * height).fill(-1);
  const queue = new Int32Array(width * height);
  const boxes: Box[] = [];
  for (let start = 0; start < map.length; start++) {
    if (map[start]! < 0.3 || labels[start] !== -1) continue;
    let head = 0;
    let tail = 0;
    queue[tail++] = start;
    labels[start] = boxes.length;
    let minX = width, minY = height, maxX = 0, maxY = 0, sum = 0, count = 0;
    while (head < tail) {
      const at = queue[head++]!;
      const x = at % width;
      const y = (at - x) / width;
      sum += map[at]!;
      count++;
      minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
      for (const next of [at - 1, at + 1, at - width, at + width]) {
        if (next < 0 || next >= map.length) continue;
        if ((next === at - 1 && x === 0) || (next === at + 1 && x === width - 1)) continue;
        if (map[next]! >= 0.3 && labels[next] === -1) {
          labels[next] = boxes.length;
          queue[tail++] = next;
        }
      }
    }
    const w = maxX - minX + 1;
    const h = maxY - minY + 1;
    if (Math.min(w, h) < 3 || sum / count < 0.6) {
      boxes.push({ x: 0, y: 0, width: 0, height: 0 }); // keeps label numbering; dropped below
      continue;
    }
    const grow = (w * h * 1.5) / (2 * (w + h));
    boxes.push({ x: minX - grow, y: minY - grow, width: w + 2 * grow, height: h + 2 * grow });
  }
  return boxes.filter((box) => box.width > 0).sort((a, b) => a.y - b.y || a.x - b.x);
}

function clampBox(box: Box, image: DecodedImage): Box {
  const x = Math.max(0, Math.floor(box.x));
  const y = Math.max(0, Math.floor(box.y));
  return {
    x,
    y,
    width: Math.max(1, Math.min(image.width - x, Math.ceil(box.width))),
    height: Math.max(1, Math.min(image.height - y, Math.ceil(box.height))),
  };
}

/** Greedy CTC: best class per step, repeats collapsed, blanks dropped; confidence is the mean kept probability. */
function ctcDecode(probabilities: Float32Array, steps: number, classes: number, alphabet: string[]) {
  let text = "";
  let previous = -1;
  let total = 0;
  let kept = 0;
  for (let step = 0; step < steps; step++) {
    let best = 0;
    let bestScore = -Infinity;
    for (let c = 0; c < classes; c++) {
      const score = probabilities[step * classes + c]!;
      if (score > bestScore) {
        bestScore = score;
        best = c;
      }
    }
    if (best !== 0 && best !== previous) {
      text += alphabet[best] ?? "";
      total += bestScore;
      kept++;
    }
    previous = best;
  }
  return { text, confidence: kept ? total / kept : 0 };
}
