import fs from "node:fs/promises";
import path from "node:path";
import { encodeModel, FLOAT, floatTensor, int64Tensor, INT64, node, valueInfo } from "../../../training/onnx-graph.ts";
import { seededWeights } from "./seeded-weights.ts";

export type TinyClipOptions = {
  imageSize?: number;
  dimensions?: number;
  hidden?: number;
  seed?: number;
  /**
   * A heavier vision tower for benches, ViT-shaped in cost: patch embedding
   * (a strided Conv), `layers` residual MLP blocks over the patch tokens, mean
   * pooling, projection. Without it the tower is one MatMul over the pixels.
   */
  vision?: { patch: number; width: number; layers: number };
};

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * Writes a tiny model in the exact layout of a Hugging Face CLIP ONNX export
 * (what `optimum-cli export onnx` / Xenova's exports produce): config.json,
 * tokenizer.json (byte-level BPE with `</w>`), tokenizer_config.json,
 * preprocessor_config.json, onnx/text_model.onnx (input_ids, attention_mask ->
 * text_embeds, last_hidden_state) and onnx/vision_model.onnx (pixel_values ->
 * image_embeds). The weights are random but fixed by the seed.
 */
export async function writeTinyClipExport(folder: string, options: TinyClipOptions = {}) {
  const imageSize = options.imageSize ?? 32;
  const dimensions = options.dimensions ?? 16;
  const hidden = options.hidden ?? 24;
  const seed = options.seed ?? 7;
  const vocab = clipByteVocab();
  const vocabSize = Object.keys(vocab).length;

  await fs.mkdir(path.join(folder, "onnx"), { recursive: true });
  await fs.writeFile(
    path.join(folder, "config.json"),
    JSON.stringify({
      model_type: "clip",
      architectures: ["CLIPModel"],
      projection_dim: dimensions,
      text_config: { model_type: "clip_text_model", hidden_size: hidden, vocab_size: vocabSize, max_position_embeddings: 77 },
      vision_config: { model_type: "clip_vision_model", hidden_size: hidden, image_size: imageSize, patch_size: imageSize },
    }),
  );
  await fs.writeFile(path.join(folder, "tokenizer.json"), JSON.stringify(clipTokenizerJson(vocab)));
  await fs.writeFile(
    path.join(folder, "tokenizer_config.json"),
    JSON.stringify({
      tokenizer_class: "CLIPTokenizer",
      model_max_length: 77,
      bos_token: "<|startoftext|>",
      eos_token: "<|endoftext|>",
      pad_token: "<|endoftext|>",
      unk_token: "<|endoftext|>",
      do_lower_case: true,
    }),
  );
  await fs.writeFile(
    path.join(folder, "preprocessor_config.json"),
    JSON.stringify({
      image_processor_type: "CLIPImageProcessor",
      do_resize: true,
      size: { shortest_edge: imageSize },
      do_center_crop: true,
      crop_size: { height: imageSize, width: imageSize },
      do_rescale: true,
      rescale_factor: 1 / 255,
      do_normalize: true,
      image_mean: CLIP_MEAN,
      image_std: CLIP_STD,
      resample: 3,
      do_convert_rgb: true,
    }),
  );
  await fs.writeFile(path.join(folder, "onnx", "text_model.onnx"), textModel(vocabSize, hidden, dimensions, seed));
  await fs.writeFile(
    path.join(folder, "onnx", "vision_model.onnx"),
    options.vision ? patchVisionModel(imageSize, dimensions, seed + 1, options.vision) : visionModel(imageSize, dimensions, seed + 1),
  );
}

/** Token embeddings, masked mean over the sequence, then a projection. */
function textModel(vocabSize: number, hidden: number, dimensions: number, seed: number) {
  return encodeModel({
    name: "tiny_clip_text",
    initializer: [
      floatTensor("token_embedding", [vocabSize, hidden], seededWeights(vocabSize * hidden, seed)),
      floatTensor("text_projection", [hidden, dimensions], seededWeights(hidden * dimensions, seed + 10, 0.5)),
      int64Tensor("axis_sequence", [1]),
      int64Tensor("axis_last", [2]),
    ],
    node: [
      node("Gather", ["token_embedding", "input_ids"], ["last_hidden_state"]),
      node("Cast", ["attention_mask"], ["mask_float"], { to: FLOAT }),
      node("Unsqueeze", ["mask_float", "axis_last"], ["mask_3d"]),
      node("Mul", ["last_hidden_state", "mask_3d"], ["masked"]),
      node("ReduceSum", ["masked", "axis_sequence"], ["summed"], { keepdims: 0 }),
      node("ReduceSum", ["mask_3d", "axis_sequence"], ["count"], { keepdims: 0 }),
      node("Div", ["summed", "count"], ["pooled"]),
      node("MatMul", ["pooled", "text_projection"], ["text_embeds"]),
    ],
    input: [valueInfo("input_ids", INT64, ["batch_size", "sequence_length"]), valueInfo("attention_mask", INT64, ["batch_size", "sequence_length"])],
    output: [
      valueInfo("text_embeds", FLOAT, ["batch_size", dimensions]),
      valueInfo("last_hidden_state", FLOAT, ["batch_size", "sequence_length", hidden]),
    ],
  });
}

/** Flattened pixels times a projection: enough to tell images apart, in the real graph's names. */
function visionModel(imageSize: number, dimensions: number, seed: number) {
  const features = 3 * imageSize * imageSize;
  return encodeModel({
    name: "tiny_clip_vision",
    initializer: [
      floatTensor("visual_projection", [features, dimensions], seededWeights(features * dimensions, seed, 0.05)),
      int64Tensor("flat_shape", [0, -1]),
    ],
    node: [node("Reshape", ["pixel_values", "flat_shape"], ["flat"]), node("MatMul", ["flat", "visual_projection"], ["image_embeds"])],
    input: [valueInfo("pixel_values", FLOAT, ["batch_size", 3, imageSize, imageSize])],
    output: [valueInfo("image_embeds", FLOAT, ["batch_size", dimensions])],
  });
}

/** Patch embedding, residual MLP blocks over the tokens, mean pool, projection: the cost profile of a small ViT. */
function patchVisionModel(imageSize: number, dimensions: number, seed: number, shape: NonNullable<TinyClipOptions["vision"]>) {
  const { patch, width, layers } = shape;
  const grid = Math.floor(imageSize / patch);
  const initializer = [
    floatTensor("patch_embedding", [width, 3, patch, patch], seededWeights(width * 3 * patch * patch, seed, Math.sqrt(1 / (3 * patch * patch)))),
    int64Tensor("tokens_shape", [0, width, grid * grid]),
    floatTensor("visual_projection", [width, dimensions], seededWeights(width * dimensions, seed + 1, Math.sqrt(1 / width))),
  ];
  const nodes = [
    node("Conv", ["pixel_values", "patch_embedding"], ["patches"], { strides: [patch, patch], kernel_shape: [patch, patch] }),
    node("Reshape", ["patches", "tokens_shape"], ["channels_first"]),
    node("Transpose", ["channels_first"], ["hidden_0"], { perm: [0, 2, 1] }),
  ];
  for (let layer = 0; layer < layers; layer++) {
    initializer.push(
      floatTensor(`mlp_up_${layer}`, [width, 4 * width], seededWeights(width * 4 * width, seed + 10 + layer, Math.sqrt(1 / width))),
      floatTensor(`mlp_down_${layer}`, [4 * width, width], seededWeights(4 * width * width, seed + 100 + layer, Math.sqrt(1 / (4 * width)) / layers)),
    );
    nodes.push(
      node("MatMul", [`hidden_${layer}`, `mlp_up_${layer}`], [`up_${layer}`]),
      node("Relu", [`up_${layer}`], [`act_${layer}`]),
      node("MatMul", [`act_${layer}`, `mlp_down_${layer}`], [`down_${layer}`]),
      node("Add", [`hidden_${layer}`, `down_${layer}`], [`hidden_${layer + 1}`]),
    );
  }
  nodes.push(
    node("ReduceMean", [`hidden_${layers}`], ["pooled"], { axes: [1], keepdims: 0 }),
    node("MatMul", ["pooled", "visual_projection"], ["image_embeds"]),
    node("Identity", [`hidden_${layers}`], ["last_hidden_state"]),
  );
  return encodeModel({
    name: "bench_clip_vision",
    initializer,
    node: nodes,
    input: [valueInfo("pixel_values", FLOAT, ["batch_size", 3, imageSize, imageSize])],
    output: [valueInfo("image_embeds", FLOAT, ["batch_size", dimensions]), valueInfo("last_hidden_state", FLOAT, ["batch_size", grid * grid, width])],
  });
}

/** GPT-2/CLIP's byte -> printable character table. */
function bytesToUnicode(): string[] {
  const printable = [...range(33, 126), ...range(161, 172), ...range(174, 255)];
  const chars: string[] = new Array(256);
  let extra = 0;
  for (let byte = 0; byte < 256; byte++) {
    chars[byte] = printable.includes(byte) ? String.fromCharCode(byte) : String.fromCharCode(256 + extra++);
  }
  return chars;
}

function range(from: number, to: number) {
  return Array.from({ length: to - from + 1 }, (_, index) => from + index);
}

/** CLIP's vocabulary order: the 256 byte symbols, the same with `</w>`, then the special tokens. */
function clipByteVocab(): Record<string, number> {
  const symbols = bytesToUnicode();
  const vocab: Record<string, number> = {};
  symbols.forEach((symbol) => (vocab[symbol] = Object.keys(vocab).length));
  symbols.forEach((symbol) => (vocab[`${symbol}</w>`] = Object.keys(vocab).length));
  vocab["<|startoftext|>"] = Object.keys(vocab).length;
  vocab["<|endoftext|>"] = Object.keys(vocab).length;
  return vocab;
}

function clipTokenizerJson(vocab: Record<string, number>) {
  const special = (content: string) => ({
    id: vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special("<|startoftext|>"), special("<|endoftext|>")],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "NFC" }, { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }, { type: "Lowercase" }],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" },
          behavior: "Removed",
          invert: true,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: ["<|endoftext|>", vocab["<|endoftext|>"]],
      cls: ["<|startoftext|>", vocab["<|startoftext|>"]],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<|endoftext|>",
      continuing_subword_prefix: "",
      end_of_word_suffix: "</w>",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: [],
    },
  };
}
