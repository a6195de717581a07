import fs from "node:fs/promises";
import path from "node:path";
import { constant as tensor, encodeModel, io, node, valueInfo } from "../../../../training/onnx-graph.ts";

/**
 * An Idefics3 / SmolVLM export in the layout transformers.js loads for
 * `Idefics3ForConditionalGeneration` (AutoModelForVision2Seq):
 *
 *   config.json (model_type idefics3, image_token_id, text_config llama), generation_config.json,
 *   preprocessor_config.json (Idefics3ImageProcessor, processor_class Idefics3Processor),
 *   processor_config.json (image_seq_len), tokenizer.json, tokenizer_config.json (SmolVLM's chat template),
 *   onnx/vision_encoder.onnx       pixel_values [b, n, 3, H, W], pixel_attention_mask [b, n, H, W] -> image_features
 *   onnx/embed_tokens.onnx         input_ids -> inputs_embeds
 *   onnx/decoder_model_merged.onnx inputs_embeds, attention_mask, position_ids, past_key_values.0.* -> logits, present.0.*
 *
 * The weights: the vision encoder turns the image's mean colour into
 * IMAGE_SEQ_LEN image tokens; the decoder attends (max over its key/value
 * cache) to what it has seen, so the image's dominant channel picks the first
 * letter after a non-letter token ("r", "g" or "b"), and after a letter comes
 * the next letter up to "z", then the end of the utterance. A red picture is
 * answered "rstuvwxyz"; without the image in the cache nothing is said.
 */
export const TINY_SMOLVLM = "tiny-smolvlm";
const SIDE = 8;
const IMAGE_SEQ_LEN = 2;
const BOS = "<|im_start|>";
const EOS = "<|endoftext|>";
const END_OF_UTTERANCE = "<end_of_utterance>";
const SPECIAL = [EOS, BOS, END_OF_UTTERANCE, "<fake_token_around_image>", "<image>", "<global-img>"];
/** GPT-2 byte-level stand-ins for printable ASCII, a space and a newline (the tiny Florence-2 shares them). */
export const BYTES = [..."!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", "\u0120", "\u010a"];
const VOCAB = [...SPECIAL, ...BYTES];
const V = VOCAB.length;
/** Hidden size: a one-hot of the token, then three colour channels. */
const HIDDEN = V + 3;
const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const id = (token: string) => VOCAB.indexOf(token);

/** The chat template SmolVLM ships (tokenizer_config.json). */
const CHAT_TEMPLATE =
  "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

function visionEncoder() {
  // Mean colour (pixels normalised to [-1, 1]) to [0, 1] per channel, written into the colour dims of each image token.
  const projection: number[] = [];
  for (let channel = 0; channel < 3; channel++) {
    for (let token = 0; token < IMAGE_SEQ_LEN; token++) for (let d = 0; d < HIDDEN; d++) projection.push(d === V + channel ? 0.5 : 0);
  }
  const offset: number[] = [];
  for (let token = 0; token < IMAGE_SEQ_LEN; token++) for (let d = 0; d < HIDDEN; d++) offset.push(d >= V ? 0.5 : 0);
  return encodeModel({
    name: "tiny-smolvlm-vision",
    initializer: [
      tensor("projection", [3, IMAGE_SEQ_LEN * HIDDEN], projection),
      tensor("offset", [IMAGE_SEQ_LEN * HIDDEN], offset),
      tensor("per_image", [3], [-1, 1, 3], "int64"),
      tensor("per_token", [3], [-1, IMAGE_SEQ_LEN, HIDDEN], "int64"),
    ],
    node: [
      node("ReduceMean", ["pixel_values"], ["mean_colour"], { axes: [3, 4], keepdims: 0 }),
      node("Reshape", ["mean_colour", "per_image"], ["colour"]),
      node("MatMul", ["colour", "projection"], ["projected"]),
      node("Add", ["projected", "offset"], ["shifted"]),
      node("Reshape", ["shifted", "per_token"], ["image_features"]),
    ],
    input: [io("pixel_values", "float", ["batch_size", "num_images", 3, SIDE, SIDE]), valueInfo("pixel_attention_mask", 9, ["batch_size", "num_images", SIDE, SIDE])],
    output: [io("image_features", "float", ["num_images_total", IMAGE_SEQ_LEN, HIDDEN])],
  });
}

/** input_ids -> a one-hot of the token in the first vocab.length dims, three colour dims after them (LLaVA's tiny export shares it). */
export function embedTokensGraph(vocab: string[]) {
  const V = vocab.length;
  const HIDDEN = V + 3;
  const embedding: number[] = [];
  for (let i = 0; i < V; i++) for (let d = 0; d < HIDDEN; d++) embedding.push(d === i ? 1 : 0);
  return encodeModel({
    name: "tiny-smolvlm-embed",
    initializer: [tensor("embedding", [V, HIDDEN], embedding)],
    node: [node("Gather", ["embedding", "input_ids"], ["inputs_embeds"], { axis: 0 })],
    input: [io("input_ids", "int64", ["batch_size", "sequence_length"])],
    output: [io("inputs_embeds", "float", ["batch_size", "sequence_length", HIDDEN])],
  });
}

/**
 * The decoder-only language model over that hidden state: a letter's successor from the token,
 * the first letter from the strongest colour in the key/value cache, `endToken` after "z".
 */
export function colourDecoderGraph(vocab: string[], endToken: string) {
  const V = vocab.length;
  const HIDDEN = V + 3;
  const id = (token: string) => vocab.indexOf(token);
  // Text: after a letter the next one, after "z" the end of the utterance; other tokens leave it to the image.
  const text: number[] = [];
  for (let d = 0; d < HIDDEN; d++) {
    const index = d < V ? LETTERS.indexOf(vocab[d]!) : -1;
    const next = index < 0 ? -1 : index === 25 ? id(endToken) : id(LETTERS[index + 1]!);
    for (let j = 0; j < V; j++) text.push(j === next ? 10 : 0);
  }
  // Seen colour (max over the cache) to a bias of at most 5 on "r", "g", "b": below a letter's successor.
  const seen: number[] = [];
  for (let d = 0; d < HIDDEN; d++) {
    const channel = d - V;
    for (let j = 0; j < V; j++) seen.push(channel >= 0 && j === id("rgb"[channel]!) ? 5 : 0);
  }
  return encodeModel({
    name: "tiny-smolvlm-decoder",
    initializer: [tensor("text_head", [HIDDEN, V], text), tensor("seen_head", [HIDDEN, V], seen), tensor("head_axis", [1], [1], "int64")],
    node: [
      node("MatMul", ["inputs_embeds", "text_head"], ["text_logits"]),
      node("Unsqueeze", ["inputs_embeds", "head_axis"], ["new_kv"]),
      node("Concat", ["past_key_values.0.key", "new_kv"], ["present.0.key"], { axis: 2 }),
      node("Concat", ["past_key_values.0.value", "new_kv"], ["present.0.value"], { axis: 2 }),
      node("ReduceMax", ["present.0.value"], ["attended"], { axes: [2], keepdims: 0 }),
      node("MatMul", ["attended", "seen_head"], ["seen_logits"]),
      node("Add", ["text_logits", "seen_logits"], ["logits"]),
    ],
    input: [
      io("inputs_embeds", "float", ["batch_size", "sequence_length", HIDDEN]),
      io("attention_mask", "int64", ["batch_size", "total_sequence_length"]),
      io("position_ids", "int64", ["batch_size", "sequence_length"]),
      io("past_key_values.0.key", "float", ["batch_size", 1, "past_sequence_length", HIDDEN]),
      io("past_key_values.0.value", "float", ["batch_size", 1, "past_sequence_length", HIDDEN]),
    ],
    output: [
      io("logits", "float", ["batch_size", "sequence_length", V]),
      io("present.0.key", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
      io("present.0.value", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
    ],
  });
}

/** A byte-level BPE tokenizer.json over `vocab`, whose first `special.length` tokens are special. */
export function byteLevelTokenizerJson(vocab: string[], special: string[]) {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: special.map((content, index) => ({ id: index, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
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
      vocab: Object.fromEntries(vocab.map((token, index) => [token, index])),
      merges: [],
    },
  };
}

/** Writes the model folder under `modelsDir` and returns its path. */
export async function buildTinySmolVlm(modelsDir: string, name = TINY_SMOLVLM): Promise<string> {
  const dir = path.join(modelsDir, name);
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
  const eos = id(END_OF_UTTERANCE);
  await json("config.json", {
    model_type: "idefics3",
    architectures: ["Idefics3ForConditionalGeneration"],
    image_token_id: id("<image>"),
    scale_factor: 1,
    text_config: {
      model_type: "llama",
      hidden_size: HIDDEN,
      head_dim: HIDDEN,
      num_attention_heads: 1,
      num_key_value_heads: 1,
      num_hidden_layers: 1,
      vocab_size: V,
      bos_token_id: id(BOS),
      eos_token_id: eos,
    },
    vision_config: { model_type: "idefics3_vision", image_size: SIDE, patch_size: SIDE, hidden_size: 3 },
    bos_token_id: id(BOS),
    eos_token_id: eos,
    pad_token_id: 0,
  });
  await json("generation_config.json", { bos_token_id: id(BOS), eos_token_id: [eos, 0], pad_token_id: 0 });
  await json("preprocessor_config.json", {
    image_processor_type: "Idefics3ImageProcessor",
    processor_class: "Idefics3Processor",
    do_resize: true,
    size: { longest_edge: SIDE },
    max_image_size: { longest_edge: SIDE },
    do_image_splitting: false,
    resample: 1,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
    do_pad: false,
    do_convert_rgb: true,
  });
  await json("processor_config.json", { image_seq_len: IMAGE_SEQ_LEN, processor_class: "Idefics3Processor" });
  await fs.writeFile(path.join(dir, "tokenizer.json"), JSON.stringify(byteLevelTokenizerJson(VOCAB, SPECIAL), null, 2));
  await json("tokenizer_config.json", {
    tokenizer_class: "GPT2Tokenizer",
    bos_token: BOS,
    eos_token: END_OF_UTTERANCE,
    pad_token: EOS,
    unk_token: EOS,
    add_bos_token: false,
    model_max_length: 8192,
    chat_template: CHAT_TEMPLATE,
  });
  await fs.writeFile(path.join(dir, "onnx", "vision_encoder.onnx"), visionEncoder());
  await fs.writeFile(path.join(dir, "onnx", "embed_tokens.onnx"), embedTokensGraph(VOCAB));
  await fs.writeFile(path.join(dir, "onnx", "decoder_model_merged.onnx"), colourDecoderGraph(VOCAB, END_OF_UTTERANCE));
  return dir;
}
