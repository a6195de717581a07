import fs from "node:fs/promises";
import path from "node:path";
import { constant as tensor, encodeModel, io, node } from "../../../../training/onnx-graph.ts";

/**
 * An English-only Whisper export in the layout transformers.js loads
 * (as Xenova/whisper-tiny.en): preprocessor_config.json for the log-mel
 * feature extractor, onnx/encoder_model.onnx (input_features [B, 80, 3000]
 * -> last_hidden_state) and onnx/decoder_model_merged.onnx (input_ids,
 * encoder_hidden_states, past_key_values.0.{decoder,encoder}.{key,value} ->
 * logits, present.*), a Whisper tokenizer with <|startoftranscript|> and
 * <|notimestamps|>, and a generation config.
 *
 * The "acoustic model" is the clip's mean log-mel energy: sound above the
 * `loudnessThreshold` (default -1, between a 2 s tone and silence) is
 * transcribed "tuvwxyz", silence "stuvwxyz".
 */
export const TINY_WHISPER = "tiny-whisper";

const EOS = "<|endoftext|>";
const SOT = "<|startoftranscript|>";
const NO_TIMESTAMPS = "<|notimestamps|>";
const LETTERS = "abcdefghijklmnopqrstuvwxyz".split("");
const VOCAB = [EOS, "\u0120", ...LETTERS, SOT, NO_TIMESTAMPS];
const HIDDEN = 4;

function encoder() {
  return encodeModel({
    name: "tiny-whisper-encoder",
    initializer: [tensor("spread", [1, 1, HIDDEN], [1, 0, 0, 0])],
    node: [
      // [B, 80, 3000] -> [B, 1, 1] mean energy -> [B, 1, 4]
      node("ReduceMean", ["input_features"], ["energy"], { axes: [1, 2], keepdims: 1 }),
      node("Mul", ["energy", "spread"], ["last_hidden_state"]),
    ],
    input: [io("input_features", "float", ["batch_size", 80, 3000])],
    output: [io("last_hidden_state", "float", ["batch_size", 1, HIDDEN])],
  });
}

function decoder(loudnessThreshold: number) {
  const vocab = VOCAB.length;
  const id = (token: string) => VOCAB.indexOf(token);
  const table: number[] = [];
  for (const token of VOCAB) {
    const index = LETTERS.indexOf(token);
    const next = index < 0 ? -1 : index === 25 ? id(EOS) : id(LETTERS[index + 1]!);
    for (let j = 0; j < vocab; j++) table.push(j === next ? 10 : 0);
  }
  // Energy above the threshold favours "t", below it "s"; small next to the letter chain's 10.
  const k = 3;
  const weights: number[] = [];
  for (let row = 0; row < HIDDEN; row++) for (let j = 0; j < vocab; j++) weights.push(row === 0 && j === id("t") ? k : row === 0 && j === id("s") ? -k : 0);
  const bias: number[] = [];
  for (let j = 0; j < vocab; j++) bias.push(j === id("t") ? -k * loudnessThreshold : j === id("s") ? k * loudnessThreshold : 0);
  const embedding: number[] = [];
  for (let i = 0; i < vocab; i++) for (let d = 0; d < HIDDEN; d++) embedding.push(i * 0.01 + d);
  return encodeModel({
    name: "tiny-whisper-decoder",
    initializer: [
      tensor("logit_table", [vocab, vocab], table),
      tensor("audio_weights", [HIDDEN, vocab], weights),
      tensor("audio_bias", [vocab], bias),
      tensor("embedding", [vocab, HIDDEN], embedding),
      tensor("head_axis", [1], [1], "int64"),
    ],
    node: [
      node("Gather", ["logit_table", "input_ids"], ["text_logits"], { axis: 0 }),
      node("MatMul", ["encoder_hidden_states", "audio_weights"], ["audio_scores"]),
      node("Add", ["audio_scores", "audio_bias"], ["audio_logits"]),
      node("Add", ["text_logits", "audio_logits"], ["logits"]),
      node("Gather", ["embedding", "input_ids"], ["hidden"], { axis: 0 }),
      node("Unsqueeze", ["hidden", "head_axis"], ["new_kv"]),
      node("Concat", ["past_key_values.0.decoder.key", "new_kv"], ["present.0.decoder.key"], { axis: 2 }),
      node("Concat", ["past_key_values.0.decoder.value", "new_kv"], ["present.0.decoder.value"], { axis: 2 }),
      node("Unsqueeze", ["encoder_hidden_states", "head_axis"], ["present.0.encoder.key"]),
      node("Unsqueeze", ["encoder_hidden_states", "head_axis"], ["present.0.encoder.value"]),
    ],
    input: [
      io("input_ids", "int64", ["batch_size", "decoder_sequence_length"]),
      io("encoder_hidden_states", "float", ["batch_size", "encoder_sequence_length", HIDDEN]),
      io("past_key_values.0.decoder.key", "float", ["batch_size", 1, "past_decoder_sequence_length", HIDDEN]),
      io("past_key_values.0.decoder.value", "float", ["batch_size", 1, "past_decoder_sequence_length", HIDDEN]),
      io("past_key_values.0.encoder.key", "float", ["batch_size", 1, "encoder_sequence_length_out", HIDDEN]),
      io("past_key_values.0.encoder.value", "float", ["batch_size", 1, "encoder_sequence_length_out", HIDDEN]),
    ],
    output: [
      io("logits", "float", ["batch_size", "decoder_sequence_length", vocab]),
      io("present.0.decoder.key", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
      io("present.0.decoder.value", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
      io("present.0.encoder.key", "float", ["batch_size", 1, "encoder_sequence_length", HIDDEN]),
      io("present.0.encoder.value", "float", ["batch_size", 1, "encoder_sequence_length", HIDDEN]),
    ],
  });
}

/** Writes the model folder under `modelsDir` and returns its path. */
export async function buildTinyWhisper(modelsDir: string, options: { loudnessThreshold?: number } = {}, name = TINY_WHISPER): Promise<string> {
  const dir = path.join(modelsDir, name);
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
  const special = { decoder_start_token_id: VOCAB.indexOf(SOT), eos_token_id: 0, pad_token_id: 0, bos_token_id: 0 };
  await json("config.json", {
    model_type: "whisper",
    architectures: ["WhisperForConditionalGeneration"],
    is_encoder_decoder: true,
    d_model: HIDDEN,
    encoder_layers: 1,
    decoder_layers: 1,
    encoder_attention_heads: 1,
    decoder_attention_heads: 1,
    num_mel_bins: 80,
    max_source_positions: 1500,
    max_target_positions: 448,
    vocab_size: VOCAB.length,
    ...special,
  });
  await json("generation_config.json", { ...special, no_timestamps_token_id: VOCAB.indexOf(NO_TIMESTAMPS), is_multilingual: false, max_length: 448, suppress_tokens: [], begin_suppress_tokens: [] });
  await json("preprocessor_config.json", {
    feature_extractor_type: "WhisperFeatureExtractor",
    feature_size: 80,
    sampling_rate: 16000,
    hop_length: 160,
    chunk_length: 30,
    n_fft: 400,
    n_samples: 480000,
    nb_max_frames: 3000,
    padding_side: "right",
    padding_value: 0,
    return_attention_mask: false,
  });
  const added = [EOS, SOT, NO_TIMESTAMPS].map((content) => ({ id: VOCAB.indexOf(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  await json("tokenizer.json", {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(VOCAB.map((token, index) => [token, index])),
      merges: [],
    },
  });
  await json("tokenizer_config.json", { tokenizer_class: "WhisperTokenizer", bos_token: EOS, eos_token: EOS, unk_token: EOS, pad_token: EOS, model_max_length: 1024 });
  await fs.writeFile(path.join(dir, "onnx", "encoder_model.onnx"), encoder());
  await fs.writeFile(path.join(dir, "onnx", "decoder_model_merged.onnx"), decoder(options.loudnessThreshold ?? -1));
  return dir;
}
