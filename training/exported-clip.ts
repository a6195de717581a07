import path from "node:path";
import * as ort from "onnxruntime-node";
import {
  AutoProcessor,
  AutoTokenizer,
  CLIPTextModelWithProjection,
  CLIPVisionModelWithProjection,
  RawImage,
  env,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  type Processor,
  type Tensor,
} from "@huggingface/transformers";
import { PROJECTOR_INPUT, PROJECTOR_OUTPUT } from "./projector/projector-model.ts";

function rowsOf(tensor: Tensor): Float32Array[] {
  const [count, size] = tensor.dims as [number, number];
  const data = tensor.data as Float32Array;
  return Array.from({ length: count }, (_, i) => data.slice(i * size, (i + 1) * size));
}

/**
 * The exported model loaded exactly as a real CLIP export is: transformers.js'
 * AutoTokenizer, AutoProcessor and CLIP*ModelWithProjection classes from a
 * local folder, no network.
 */
export class ExportedClip {
  private constructor(
    private readonly tokenizer: PreTrainedTokenizer,
    private readonly processor: Processor,
    private readonly textModel: PreTrainedModel,
    private readonly visionModel: PreTrainedModel,
  ) {}

  static async load(dir: string): Promise<ExportedClip> {
    env.allowRemoteModels = false;
    env.localModelPath = path.dirname(path.resolve(dir)) + "/";
    const id = path.basename(dir);
    const options = { local_files_only: true, dtype: "fp32" as const, device: "cpu" as const };
    return new ExportedClip(
      await AutoTokenizer.from_pretrained(id, options),
      await AutoProcessor.from_pretrained(id, options),
      await CLIPTextModelWithProjection.from_pretrained(id, options),
      await CLIPVisionModelWithProjection.from_pretrained(id, options),
    );
  }

  async embedTexts(texts: string[], batchSize = 256): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += batchSize) {
      const inputs = this.tokenizer(texts.slice(i, i + batchSize), { padding: true, truncation: true });
      const { text_embeds } = await this.textModel(inputs);
      out.push(...rowsOf(text_embeds));
    }
    return out;
  }

  /** RGB bytes (side x side x 3), as a decoded PNG gives them. */
  async embedImages(images: Uint8Array[], side: number, batchSize = 256): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (let i = 0; i < images.length; i += batchSize) {
      const raw = images.slice(i, i + batchSize).map((pixels) => new RawImage(new Uint8ClampedArray(pixels), side, side, 3));
      const { pixel_values } = await this.processor(raw);
      const { image_embeds } = await this.visionModel({ pixel_values });
      out.push(...rowsOf(image_embeds));
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.textModel.dispose(), this.visionModel.dispose()]);
  }
}

/** A projector graph written by `tessera projector train`, on onnxruntime-node. */
export class ExportedProjector {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async load(file: string): Promise<ExportedProjector> {
    return new ExportedProjector(await ort.InferenceSession.create(file));
  }

  async project(vectors: Float32Array[]): Promise<Float32Array[]> {
    const size = vectors[0]!.length;
    const input = new Float32Array(vectors.length * size);
    vectors.forEach((vector, i) => input.set(vector, i * size));
    const result = await this.session.run({ [PROJECTOR_INPUT]: new ort.Tensor("float32", input, [vectors.length, size]) });
    const output = result[PROJECTOR_OUTPUT]!;
    const outSize = output.dims[1]!;
    const data = output.data as Float32Array;
    return vectors.map((_, i) => data.slice(i * outSize, (i + 1) * outSize));
  }
}
