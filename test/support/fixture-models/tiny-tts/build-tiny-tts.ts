import fs from "node:fs/promises";
import path from "node:path";
import { encodeModel, floatTensor, int64Tensor, io, node } from "../../../../training/onnx-graph.ts";

/**
 * A text-to-speech export in the shape of transformers.js' VITS/MMS models
 * (config `model_type: "vits"`, a tokenizer, onnx/model.onnx with inputs
 * input_ids, attention_mask and output `waveform` [batch, samples]).
 *
 * Each character becomes 0.1 s of a tone of its own pitch, so the clip's
 * length and spectrum follow the text: "ab" is 0.2 s, 220 Hz then 240 Hz.
 */
export const TINY_TTS = "tiny-tts";
export const TINY_TTS_SAMPLE_RATE = 16000;
export const SAMPLES_PER_TOKEN = 1600;

const PAD = "<pad>";
const LETTERS = "abcdefghijklmnopqrstuvwxyz ".split("");
const VOCAB = [PAD, ...LETTERS];

/** The pitch a token is spoken at (silence for padding and spaces). */
export function tinyTtsPitch(token: string): number {
  if (token === PAD || token === " ") return 0;
  return 200 + 20 * (LETTERS.indexOf(token) + 1);
}

function buildGraph(): Uint8Array {
  const table: number[] = [];
  for (const token of VOCAB) {
    const pitch = tinyTtsPitch(token);
    for (let i = 0; i < SAMPLES_PER_TOKEN; i++) table.push(pitch ? 0.5 * Math.sin((2 * Math.PI * pitch * i) / TINY_TTS_SAMPLE_RATE) : 0);
  }
  return encodeModel({
    name: TINY_TTS,
    initializer: [floatTensor("tones", [VOCAB.length, SAMPLES_PER_TOKEN], table), int64Tensor("flat_shape", [0, -1])],
    node: [
      // [batch, tokens] -> [batch, tokens, samples] -> [batch, tokens * samples]
      node("Gather", ["tones", "input_ids"], ["per_token"], { axis: 0 }),
      node("Reshape", ["per_token", "flat_shape"], ["waveform"]),
    ],
    input: [io("input_ids", "int64", ["batch_size", "sequence_length"]), io("attention_mask", "int64", ["batch_size", "sequence_length"])],
    output: [io("waveform", "float", ["batch_size", "num_samples"])],
  });
}

/** Writes the model folder under `modelsDir` and returns its path. */
export async function buildTinyTts(modelsDir: string, name = TINY_TTS): Promise<string> {
  const dir = path.join(modelsDir, name);
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
  await json("config.json", { model_type: "vits", architectures: ["VitsModel"], sampling_rate: TINY_TTS_SAMPLE_RATE, vocab_size: VOCAB.length });
  await json("tokenizer.json", {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: PAD, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: "Lowercase" },
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: PAD,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: false,
      vocab: Object.fromEntries(VOCAB.map((token, id) => [token, id])),
      merges: [],
    },
  });
  await json("tokenizer_config.json", { tokenizer_class: "VitsTokenizer", pad_token: PAD, unk_token: PAD, model_max_length: 4096 });
  await fs.writeFile(path.join(dir, "onnx", "model.onnx"), buildGraph());
  return dir;
}
