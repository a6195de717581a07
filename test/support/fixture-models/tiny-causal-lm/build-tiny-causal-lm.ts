import fs from "node:fs/promises";
import path from "node:path";
import { encodeModel, FLOAT, floatTensor, INT64, int64Tensor, node, valueInfo } from "../../../../training/onnx-graph.ts";

/**
 * A GPT-2 style causal language model small enough to build in a test, with
 * exactly the files and tensor names of a transformers.js export:
 *
 *   config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
 *   onnx/model.onnx with inputs  input_ids, attention_mask, position_ids,
 *                                past_key_values.0.key, past_key_values.0.value
 *                   and outputs logits, present.0.key, present.0.value
 *
 * The weights make it a bigram model over a byte-level BPE vocabulary: after a
 * letter comes the next letter of the alphabet, after "z" the end-of-text
 * token, after a space "a". So "abc" continues as "defg...", and "wx" as "yz"
 * then stops. The key/value cache grows by one position per step, so a wrong
 * cache shape or a wrong input name fails the real generation loop.
 */
export const TINY_CAUSAL_LM = "tiny-causal-lm";

export const EOS = "<|endoftext|>";
const SPACE = "\u0120"; // "Ġ": byte-level BPE's stand-in for a space
const LETTERS = "abcdefghijklmnopqrstuvwxyz".split("");
/** The byte-level BPE vocabulary, in id order; the tiny captioner shares it. */
export const TINY_VOCAB = [EOS, SPACE, ...LETTERS];
const VOCAB = TINY_VOCAB;
const HIDDEN = 4;

/** The token the model predicts after `token` (greedy). */
export function nextTinyToken(token: string): string {
  if (token === SPACE || token === EOS) return "a";
  const index = LETTERS.indexOf(token);
  return index === LETTERS.length - 1 ? EOS : LETTERS[index + 1]!;
}

function buildGraph(): Uint8Array {
  const vocabSize = VOCAB.length;
  // Next-token logits per current token: 10 for the successor, 0 elsewhere.
  const logitTable: number[] = [];
  for (const token of VOCAB) {
    const next = VOCAB.indexOf(nextTinyToken(token));
    for (let j = 0; j < vocabSize; j++) logitTable.push(j === next ? 10 : 0);
  }
  // Cache entries: a small embedding per token, so the cache carries real values.
  const embedding: number[] = [];
  for (let i = 0; i < vocabSize; i++) for (let d = 0; d < HIDDEN; d++) embedding.push((i + 1) * 0.01 + d);

  return encodeModel({
    name: TINY_CAUSAL_LM,
    initializer: [
      floatTensor("logit_table", [vocabSize, vocabSize], logitTable),
      floatTensor("embedding", [vocabSize, HIDDEN], embedding),
      int64Tensor("head_axis", [1]),
    ],
    node: [
      node("Gather", ["logit_table", "input_ids"], ["logits"], { axis: 0 }),
      node("Gather", ["embedding", "input_ids"], ["hidden"], { axis: 0 }),
      node("Unsqueeze", ["hidden", "head_axis"], ["new_kv"]),
      node("Concat", ["past_key_values.0.key", "new_kv"], ["present.0.key"], { axis: 2 }),
      node("Concat", ["past_key_values.0.value", "new_kv"], ["present.0.value"], { axis: 2 }),
    ],
    input: [
      valueInfo("input_ids", INT64, ["batch_size", "sequence_length"]),
      valueInfo("attention_mask", INT64, ["batch_size", "total_sequence_length"]),
      valueInfo("position_ids", INT64, ["batch_size", "sequence_length"]),
      valueInfo("past_key_values.0.key", FLOAT, ["batch_size", 1, "past_sequence_length", HIDDEN]),
      valueInfo("past_key_values.0.value", FLOAT, ["batch_size", 1, "past_sequence_length", HIDDEN]),
    ],
    output: [
      valueInfo("logits", FLOAT, ["batch_size", "sequence_length", vocabSize]),
      valueInfo("present.0.key", FLOAT, ["batch_size", 1, "total_sequence_length", HIDDEN]),
      valueInfo("present.0.value", FLOAT, ["batch_size", 1, "total_sequence_length", HIDDEN]),
    ],
  });
}

/** GPT-2's tokenizer files over the tiny vocabulary. */
export async function writeTinyTokenizer(dir: string) {
  await fs.writeFile(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson(), null, 2));
  await fs.writeFile(
    path.join(dir, "tokenizer_config.json"),
    JSON.stringify({ tokenizer_class: "GPT2Tokenizer", bos_token: EOS, eos_token: EOS, unk_token: EOS, add_bos_token: false, model_max_length: 1024 }, null, 2),
  );
}

function tokenizerJson() {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: EOS, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(VOCAB.map((token, id) => [token, id])),
      merges: [],
    },
  };
}

/** Writes the model folder under `modelsDir` and returns its path. */
export async function buildTinyCausalLm(modelsDir: string, name = TINY_CAUSAL_LM): Promise<string> {
  const dir = path.join(modelsDir, name);
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
  await json("config.json", {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    n_layer: 1,
    n_head: 1,
    n_embd: HIDDEN,
    n_positions: 1024,
    vocab_size: VOCAB.length,
    bos_token_id: 0,
    eos_token_id: 0,
  });
  await json("generation_config.json", { bos_token_id: 0, eos_token_id: 0 });
  await writeTinyTokenizer(dir);
  await fs.writeFile(path.join(dir, "onnx", "model.onnx"), buildGraph());
  return dir;
}
