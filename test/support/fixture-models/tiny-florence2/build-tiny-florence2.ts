import fs from "node:fs/promises";
import path from "node:path";
import { constant as tensor, encodeModel, io, valueInfo, node } from "../../../../training/onnx-graph.ts";
import { BYTES, byteLevelTokenizerJson } from "../tiny-smolvlm/build-tiny-smolvlm.ts";

/**
 * A Florence-2 export in the layout transformers.js loads for
 * `Florence2ForConditionalGeneration` (as onnx-community/Florence-2-base-ft):
 *
 *   config.json (model_type florence2, is_encoder_decoder, text_config florence2_language),
 *   generation_config.json, preprocessor_config.json (CLIPImageProcessor with Florence2Processor's
 *   task prompts and answer post-processing types), tokenizer.json, tokenizer_config.json,
 *   onnx/vision_encoder.onnx       pixel_values [b, 3, H, W] -> image_features
 *   onnx/embed_tokens.onnx         input_ids -> inputs_embeds
 *   onnx/encoder_model.onnx        inputs_embeds, attention_mask -> last_hidden_state
 *   onnx/decoder_model_merged.onnx inputs_embeds, encoder_hidden_states, encoder_attention_mask, use_cache_branch,
 *                                  past_key_values.0.{decoder,encoder}.{key,value} -> logits, present.*
 *
 * The weights: the vision encoder writes the image's mean colour into its
 * tokens, the text encoder passes the image and task tokens on, and the
 * decoder reads the strongest colour from the encoder states: the first letter
 * is "r", "g" or "b" by the dominant channel, then the alphabet up to "z",
 * then `</s>`. A red picture's `<OCR>` is "rstuvwxyz".
 */
export const TINY_FLORENCE2 = "tiny-florence2";
const SIDE = 8;
const IMAGE_TOKENS = 2;
const SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"];
const VOCAB = [...SPECIAL, ...BYTES];
const V = VOCAB.length;
const HIDDEN = V + 3;
const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const id = (token: string) => VOCAB.indexOf(token);

function visionEncoder() {
  const projection: number[] = [];
  for (let channel = 0; channel < 3; channel++) {
    for (let token = 0; token < IMAGE_TOKENS; token++) for (let d = 0; d < HIDDEN; d++) projection.push(d === V + channel ? 0.5 : 0);
  }
  const offset: number[] = [];
  for (let token = 0; token < IMAGE_TOKENS; token++) for (let d = 0; d < HIDDEN; d++) offset.push(d >= V ? 0.5 : 0);
  return encodeModel({
    name: "tiny-florence2-vision",
    initializer: [
      tensor("projection", [3, IMAGE_TOKENS * HIDDEN], projection),
      tensor("offset", [IMAGE_TOKENS * HIDDEN], offset),
      tensor("per_token", [3], [0, IMAGE_TOKENS, HIDDEN], "int64"),
    ],
    node: [
      node("ReduceMean", ["pixel_values"], ["mean_colour"], { axes: [2, 3], keepdims: 0 }),
      node("MatMul", ["mean_colour", "projection"], ["projected"]),
      node("Add", ["projected", "offset"], ["shifted"]),
      node("Reshape", ["shifted", "per_token"], ["image_features"]),
    ],
    input: [io("pixel_values", "float", ["batch_size", 3, SIDE, SIDE])],
    output: [io("image_features", "float", ["batch_size", IMAGE_TOKENS, HIDDEN])],
  });
}

function embedTokens() {
  const embedding: number[] = [];
  for (let i = 0; i < V; i++) for (let d = 0; d < HIDDEN; d++) embedding.push(d === i ? 1 : 0);
  return encodeModel({
    name: "tiny-florence2-embed",
    initializer: [tensor("embedding", [V, HIDDEN], embedding)],
    node: [node("Gather", ["embedding", "input_ids"], ["inputs_embeds"], { axis: 0 })],
    input: [io("input_ids", "int64", ["batch_size", "sequence_length"])],
    output: [io("inputs_embeds", "float", ["batch_size", "sequence_length", HIDDEN])],
  });
}

function encoder() {
  return encodeModel({
    name: "tiny-florence2-encoder",
    initializer: [],
    node: [node("Identity", ["inputs_embeds"], ["last_hidden_state"])],
    input: [io("inputs_embeds", "float", ["batch_size", "encoder_sequence_length", HIDDEN]), io("attention_mask", "int64", ["batch_size", "encoder_sequence_length"])],
    output: [io("last_hidden_state", "float", ["batch_size", "encoder_sequence_length", HIDDEN])],
  });
}

function decoder() {
  const text: number[] = [];
  for (let d = 0; d < HIDDEN; d++) {
    const index = d < V ? LETTERS.indexOf(VOCAB[d]!) : -1;
    const next = index < 0 ? -1 : index === 25 ? id("</s>") : id(LETTERS[index + 1]!);
    for (let j = 0; j < V; j++) text.push(j === next ? 10 : 0);
  }
  const seen: number[] = [];
  for (let d = 0; d < HIDDEN; d++) {
    const channel = d - V;
    for (let j = 0; j < V; j++) seen.push(channel >= 0 && j === id("rgb"[channel]!) ? 5 : 0);
  }
  return encodeModel({
    name: "tiny-florence2-decoder",
    initializer: [tensor("text_head", [HIDDEN, V], text), tensor("seen_head", [HIDDEN, V], seen), tensor("head_axis", [1], [1], "int64")],
    node: [
      node("MatMul", ["inputs_embeds", "text_head"], ["text_logits"]),
      // Cross-attention, reduced to its strongest signal: the brightest colour among the encoder's states.
      node("ReduceMax", ["encoder_hidden_states"], ["attended"], { axes: [1], keepdims: 1 }),
      node("MatMul", ["attended", "seen_head"], ["seen_logits"]),
      node("Add", ["text_logits", "seen_logits"], ["logits"]),
      node("Unsqueeze", ["inputs_embeds", "head_axis"], ["new_kv"]),
      node("Concat", ["past_key_values.0.decoder.key", "new_kv"], ["present.0.decoder.key"], { axis: 2 }),
      node("Concat", ["past_key_values.0.decoder.value", "new_kv"], ["present.0.decoder.value"], { axis: 2 }),
      node("Unsqueeze", ["encoder_hidden_states", "head_axis"], ["present.0.encoder.key"]),
      node("Unsqueeze", ["encoder_hidden_states", "head_axis"], ["present.0.encoder.value"]),
    ],
    input: [
      io("encoder_attention_mask", "int64", ["batch_size", "encoder_sequence_length"]),
      io("encoder_hidden_states", "float", ["batch_size", "encoder_sequence_length", HIDDEN]),
      io("inputs_embeds", "float", ["batch_size", "decoder_sequence_length", HIDDEN]),
      io("past_key_values.0.decoder.key", "float", ["batch_size", 1, "past_decoder_sequence_length", HIDDEN]),
      io("past_key_values.0.decoder.value", "float", ["batch_size", 1, "past_decoder_sequence_length", HIDDEN]),
      io("past_key_values.0.encoder.key", "float", ["batch_size", 1, "encoder_sequence_length_out", HIDDEN]),
      io("past_key_values.0.encoder.value", "float", ["batch_size", 1, "encoder_sequence_length_out", HIDDEN]),
      valueInfo("use_cache_branch", 9, [1]),
    ],
    output: [
      io("logits", "float", ["batch_size", "decoder_sequence_length", V]),
      io("present.0.decoder.key", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
      io("present.0.decoder.value", "float", ["batch_size", 1, "total_sequence_length", HIDDEN]),
      io("present.0.encoder.key", "float", ["batch_size", 1, "encoder_sequence_length", HIDDEN]),
      io("present.0.encoder.value", "float", ["batch_size", 1, "encoder_sequence_length", HIDDEN]),
    ],
  });
}

/** Writes the model folder under `modelsDir` and returns its path. */
export async function buildTinyFlorence2(modelsDir: string, name = TINY_FLORENCE2): Promise<string> {
  const dir = path.join(modelsDir, name);
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
  const ids = { bos_token_id: id("<s>"), pad_token_id: id("<pad>"), eos_token_id: id("</s>"), decoder_start_token_id: id("</s>") };
  await json("config.json", {
    model_type: "florence2",
    architectures: ["Florence2ForConditionalGeneration"],
    is_encoder_decoder: true,
    text_config: {
      model_type: "florence2_language",
      d_model: HIDDEN,
      decoder_layers: 1,
      decoder_attention_heads: 1,
      encoder_layers: 1,
      encoder_attention_heads: 1,
      vocab_size: V,
      is_encoder_decoder: true,
      ...ids,
    },
    vision_config: { model_type: "davit", projection_dim: HIDDEN },
    vocab_size: V,
    ...ids,
  });
  await json("generation_config.json", { ...ids, no_repeat_ngram_size: 0 });
  await json("preprocessor_config.json", {
    image_processor_type: "CLIPImageProcessor",
    processor_class: "Florence2Processor",
    do_resize: true,
    size: { height: SIDE, width: SIDE },
    do_center_crop: false,
    resample: 3,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
    do_convert_rgb: true,
    // Florence2Processor reads its task table from here, as the real export ships it.
    tasks_answer_post_processing_type: { "<OCR>": "pure_text", "<OCR_WITH_REGION>": "ocr", "<CAPTION>": "pure_text", "<MORE_DETAILED_CAPTION>": "pure_text", "<OD>": "description_with_bboxes" },
    task_prompts_without_inputs: {
      "<OCR>": "What is the text in the image?",
      "<OCR_WITH_REGION>": "What is the text in the image, with regions?",
      "<CAPTION>": "What does the image describe?",
      "<MORE_DETAILED_CAPTION>": "Describe with a paragraph what is shown in the image.",
      "<OD>": "Locate the objects with category name in the image.",
    },
    task_prompts_with_input: { "<CAPTION_TO_PHRASE_GROUNDING>": "Locate the phrases in the caption: {input}" },
  });
  await fs.writeFile(path.join(dir, "tokenizer.json"), JSON.stringify(byteLevelTokenizerJson(VOCAB, SPECIAL), null, 2));
  await json("tokenizer_config.json", { tokenizer_class: "BartTokenizer", bos_token: "<s>", eos_token: "</s>", pad_token: "<pad>", unk_token: "<unk>", model_max_length: 1024 });
  await fs.writeFile(path.join(dir, "onnx", "vision_encoder.onnx"), visionEncoder());
  await fs.writeFile(path.join(dir, "onnx", "embed_tokens.onnx"), embedTokens());
  await fs.writeFile(path.join(dir, "onnx", "encoder_model.onnx"), encoder());
  await fs.writeFile(path.join(dir, "onnx", "decoder_model_merged.onnx"), decoder());
  return dir;
}
