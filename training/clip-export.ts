import fs from "node:fs/promises";
import path from "node:path";
import { EMBEDDING_SIZE } from "./tower-weights.ts";
import { IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD, type ImageTower } from "./image-tower.ts";
import type { TextTower } from "./text-tower.ts";
import { MAX_TEXT_TOKENS } from "./text-tokenizer.ts";

/**
 * Writes the towers as a standard Hugging Face CLIP ONNX export folder:
 * config.json (model_type clip), preprocessor_config.json, and
 * onnx/text_model.onnx + onnx/vision_model.onnx with CLIP's tensor names.
 * The tokenizer files are written before training (training tokenizes with them).
 */
export async function writeClipExport(dir: string, image: ImageTower, text: TextTower): Promise<void> {
  await fs.mkdir(path.join(dir, "onnx"), { recursive: true });
  const config = {
    architectures: ["CLIPModel"],
    model_type: "clip",
    projection_dim: EMBEDDING_SIZE,
    logit_scale_init_value: 2.6592,
    text_config: { model_type: "clip_text_model", vocab_size: text.vocabSize, max_position_embeddings: MAX_TEXT_TOKENS, projection_dim: EMBEDDING_SIZE },
    vision_config: { model_type: "clip_vision_model", image_size: IMAGE_SIZE, num_channels: 3, projection_dim: EMBEDDING_SIZE },
    tessera: {
      note: "Not a transformer: a fixed k-means convolutional front end with a trained MLP head (image) and a bag-of-words text tower, trained here; see MODEL_CARD.md",
    },
  };
  const preprocessor = {
    image_processor_type: "CLIPImageProcessor",
    feature_extractor_type: "CLIPFeatureExtractor",
    do_resize: true,
    size: { shortest_edge: IMAGE_SIZE },
    resample: 3,
    do_center_crop: true,
    crop_size: { height: IMAGE_SIZE, width: IMAGE_SIZE },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: IMAGE_MEAN,
    image_std: IMAGE_STD,
    do_convert_rgb: true,
  };
  await fs.writeFile(path.join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  await fs.writeFile(path.join(dir, "preprocessor_config.json"), JSON.stringify(preprocessor, null, 2) + "\n");
  await fs.writeFile(path.join(dir, "onnx", "text_model.onnx"), text.toOnnx());
  await fs.writeFile(path.join(dir, "onnx", "vision_model.onnx"), image.toOnnx());
}
