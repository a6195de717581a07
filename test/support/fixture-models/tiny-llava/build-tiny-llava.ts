import fs from "node:fs/promises";
import path from "node:path";
import { constant as tensor, encodeModel, io, node } from "../../../../training/onnx-graph.ts";
import { BYTES, byteLevelTokenizerJson, colourDecoderGraph, embedTokensGraph } from "../tiny-smolvlm/build-tiny-smolvlm.ts";

/**
 * A LLaVA export in the layout transformers.js loads for
 * `LlavaForConditionalGeneration` (as llava-hf exports on onnx-community):
 *
 *   config.json (model_type llava, image_token_index, text_config llama), generation_config.json,
 *   preprocessor_config.json (CLIPImageProcessor, processor_class LlavaProcessor),
 *   processor_config.json (image_token, patch_size, num_additional_image_tokens),
 *   tokenizer.json, tokenizer_config.json (llava-1.5's USER/ASSISTANT chat template),
 *   onnx/vision_encoder.onnx       pixel_values [b, 3, H, W] -> image_features [b, patches, hidden]
 *   onnx/embed_tokens.onnx, onnx/decoder_model_merged.onnx as the tiny SmolVLM's.
 *
 * Each 4x4 patch becomes one image token holding the patch's mean colour; the
 * decoder picks the first letter by the strongest channel it has seen, then
 * runs the alphabet to "z" and the end of text. A red picture is "rstuvwxyz".
 */
export const TINY_LLAVA = "tiny-llava";
const SIDE = 8;
const PATCH = 4;
const SPECIAL = ["<unk>", "<s>", "</s>", "<image>"];
const VOCAB = [...SPECIAL, ...BYTES];
const V = VOCAB.length;
const HIDDEN = V + 3;
const id = (token: string) => VOCAB.indexOf(token);

const CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% elif item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}{% if message['role'] == 'user' %} {% else %}{{eos_token}}{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT: {% endif %}";

function visionEncoder() {
  // [b, 3, 8, 8] -> 2x2 average pool -> [b, 3, 2, 2] -> [b, 4 patches, 3] -> colour dims of the hidden state, in [0, 1].
  const projection: number[] = [];
  for (let channel = 0; channel < 3; channel++) for (let d = 0; d < HIDDEN; d++) projection.push(d === V + channel ? 0.5 : 0);
  const offset: number[] = [];
  for (let d = 0; d < HIDDEN; d++) offset.push(d >= V ? 0.5 : 0);
  return encodeModel({
    name: "tiny-llava-vision",
    initializer: [tensor("projection", [3, HIDDEN], projection), tensor("offset", [HIDDEN], offset), tensor("patches", [3], [0, 3, -1], "int64")],
    node: [
      node("AveragePool", ["pixel_values"], ["pooled"], { kernel_shape: [PATCH, PATCH], strides: [PATCH, PATCH] }),
      node("Reshape", ["pooled", "patches"], ["per_patch"]),
      node("Transpose", ["per_patch"], ["patch_colours"], { perm: [0, 2, 1] }),
      node("MatMul", ["patch_colours", "projection"], ["projected"]),
      node("Add", ["projected", "offset"], ["image_features"]),
    ],
    input: [io("pixel_values", "float", ["batch_size", 3, SIDE, SIDE])],
    output: [io("image_features", "float", ["batch_size", (SIDE / PATCH) ** 2, HIDDEN])],
  });
}

/** Writes the model folder under `modelsDir` and returns its path. */
export async function buildTinyLlava(modelsDir: string, name = TINY_LLAVA): Promise<string> {
  const dir = path.join(modelsDir, name);
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const json = (file: string, value: unknown) => fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
  const ids = { bos_token_id: id("<s>"), eos_token_id: id("</s>"), pad_token_id: id("<unk>") };
  await json("config.json", {
    model_type: "llava",
    architectures: ["LlavaForConditionalGeneration"],
    image_token_index: id("<image>"),
    text_config: { model_type: "llama", hidden_size: HIDDEN, head_dim: HIDDEN, num_attention_heads: 1, num_key_value_heads: 1, num_hidden_layers: 1, vocab_size: V, ...ids },
    vision_config: { model_type: "clip_vision_model", image_size: SIDE, patch_size: PATCH, hidden_size: 3 },
    ...ids,
  });
  await json("generation_config.json", ids);
  await json("preprocessor_config.json", {
    image_processor_type: "CLIPImageProcessor",
    processor_class: "LlavaProcessor",
    do_resize: true,
    size: { shortest_edge: SIDE },
    do_center_crop: true,
    crop_size: { height: SIDE, width: SIDE },
    resample: 3,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
    do_convert_rgb: true,
  });
  await json("processor_config.json", { image_token: "<image>", patch_size: PATCH, num_additional_image_tokens: 0, processor_class: "LlavaProcessor" });
  await fs.writeFile(path.join(dir, "tokenizer.json"), JSON.stringify(byteLevelTokenizerJson(VOCAB, SPECIAL), null, 2));
  await json("tokenizer_config.json", {
    tokenizer_class: "LlamaTokenizer",
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: "<unk>",
    add_bos_token: false,
    model_max_length: 4096,
    chat_template: CHAT_TEMPLATE,
  });
  await fs.writeFile(path.join(dir, "onnx", "vision_encoder.onnx"), visionEncoder());
  await fs.writeFile(path.join(dir, "onnx", "embed_tokens.onnx"), embedTokensGraph(VOCAB));
  await fs.writeFile(path.join(dir, "onnx", "decoder_model_merged.onnx"), colourDecoderGraph(VOCAB, "</s>"));
  return dir;
}
