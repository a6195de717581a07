import fs from "node:fs/promises";
import path from "node:path";
import { constant as tensor, encodeModel, io, node } from "../../../../training/onnx-graph.ts";
import { EOS, TINY_VOCAB, writeTinyTokenizer } from "../tiny-causal-lm/build-tiny-causal-lm.ts";

/**
 * An image-to-text export in the layout transformers.js loads for
 * `vision-encoder-decoder` models (ViT encoder + GPT-2 decoder, as
 * vit-gpt2-image-captioning): preprocessor_config.json, onnx/encoder_model.onnx
 * (pixel_values -> last_hidden_state) and onnx/decoder_model_merged.onnx
 * (input_ids, encoder_hidden_states, past_key_values.0.* -> logits, present.0.*).
 *
 * The encoder is the image's mean colour. The first word follows the dominant
 * channel: "r..." for red, "g..." for green, "b..." for blue; after that each
 * letter is followed by the next one, up to "z". A red picture is "rstuvwxyz".
 */
export const TINY_CAPTIONER = "tiny-captioner";
const SIDE = 8;
const HIDDEN = 4;

function encoder() {
  return encodeModel({
    name: "tiny-captioner-encoder",
    initializer: [tensor("token_axis", [1], [1], "int64")],
    node: [
      node("ReduceMean", ["pixel_values"], ["mean_colour"], { axes: [2, 3], keepdims: 0 }),
      node("Unsqueeze", ["mean_colour", "token_axis"], ["last_hidden_state"]),
    ],
    input: [io("pixel_values", "float", ["batch_size", 3, SIDE, SIDE])],
    output: [io("last_hidden_state", "float", ["batch_size", 1, 3])],
  });
}

function decoder() {
  const vocab = TINY_VOCAB.length;
  const letter = (token: string) => TINY_VOCAB.indexOf(token);
  // Next-token logits per current token; the start token (end-of-text) has none, so the image decides.
  const table: number[] = [];
  for (const token of TINY_VOCAB) {
    const index = "abcdefghijklmnopqrstuvwxyz".indexOf(token);
    const next = index < 0 ? -1 : index === 25 ? letter(EOS) : letter("abcdefghijklmnopqrstuvwxyz"[index + 1]!);
    for (let j = 0; j < vocab; j++) table.push(j === next ? 10 : 0);
  }
  // Mean colour (normalised to [-1, 1]) to a first-letter bias: R -> "r", G -> "g", B -> "b".
  const colourBias: number[] = [];
  for (const channel of ["r", "g", "b"]) for (let j = 0; j < vocab; j++) colourBias.push(j === letter(channel) ? 2 : 0);
  const embedding: number[] = [];
  for (let i = 0; i < vocab; i++) for (let d = 0; d < HIDDEN; d++) embedding.push(i * 0.01 + d);
  return encodeModel({
    name: "tiny-captioner-decoder",
    initializer: [
      tensor("logit_table", [vocab, vocab], table),
      tensor("colour_bias", [3, vocab], colourBias),
      tensor("embedding", [vocab, HIDDEN], embedding),
      tensor("head_axis", [1], [1], "int64"),
    ],
    node: [
      node("Gather", ["logit_table", "input_ids"], ["text_logits"], { axis: 0 }),
      node("MatMul", ["encoder_hidden_states", "colour_bias"], ["image_logits"]),
      node("Add", ["text_logits", "image_logits"], ["logits"]),
      node("Gather", ["embedding", "input_ids"], ["hidden"], { axis: 0 }),
      node("Unsqueeze", ["hidden", "head_axis"], ["new_kv"]),
      node("Concat", ["past_key_values.0.key", "new_kv"], ["present.0.key"], { axis: 2 }),
      node("Concat", ["past_key_values.0.value", "new_kv"], ["present.0.value"], { axis: 2 }),
    ],
    input: [
      io("input_ids", "int64", ["batch_size", "decoder_sequence_length"]),
      io("encoder_hidden_states", "float", ["batch_size", 1, 3]),
      io("past_key_values.0.key", "float", ["batch_size", 1, "past_decoder_sequence_length", HIDDEN]),
      io("past_key_values.0.value", "float", ["batch_size", 1, "past_decoder_sequence_length", HIDDEN]),
    ],
    output: [
      io("logits", "float", ["batch_size", "decoder_sequence_length", vocab]),
      io("present.0.key", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
      io("present.0.value", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
    ],
  });
}

/** Writes the model folder under `modelsDir` and returns its path. */
export async function buildTinyCaptioner(modelsDir: string, name = TINY_CAPTIONER): Promise<string> {
  const dir = path.join(modelsDir, name);
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
  const decoderConfig = { model_type: "gpt2", n_layer: 1, n_head: 1, n_embd: HIDDEN, vocab_size: TINY_VOCAB.length, bos_token_id: 0, eos_token_id: 0, add_cross_attention: true };
  await json("config.json", {
    model_type: "vision-encoder-decoder",
    architectures: ["VisionEncoderDecoderModel"],
    is_encoder_decoder: true,
    encoder: { model_type: "vit", hidden_size: 3, image_size: SIDE, num_channels: 3 },
    decoder: decoderConfig,
    decoder_start_token_id: 0,
    bos_token_id: 0,
    eos_token_id: 0,
    pad_token_id: 0,
  });
  await json("generation_config.json", { decoder_start_token_id: 0, bos_token_id: 0, eos_token_id: 0, pad_token_id: 0 });
  await json("preprocessor_config.json", {
    image_processor_type: "ViTImageProcessor",
    do_resize: true,
    size: { height: SIDE, width: SIDE },
    resample: 2,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
  });
  await writeTinyTokenizer(dir);
  await fs.writeFile(path.join(dir, "onnx", "encoder_model.onnx"), encoder());
  await fs.writeFile(path.join(dir, "onnx", "decoder_model_merged.onnx"), decoder());
  return dir;
}
