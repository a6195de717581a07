import type { DecodedImage } from "../../assets/decoded-media.ts";
import { checkVectors, chunks, InferenceServerClient, inferenceServerOptions } from "../inference-server-client.ts";
import type { ModelAdapter, ModelHandle } from "../model-adapter.ts";
import { imageDataUrl } from "../remote-encoder-inputs.ts";
import { remoteModalities } from "./kserve-v2-encoder.ts";
import { capChars } from "./tfjs-universal-sentence-encoder.ts";

type EmbeddingsResponse = { data?: Array<{ index?: number; embedding?: number[] | string }> };

/**
 * An encoder behind the OpenAI-compatible embeddings API (POST {url}/embeddings; url is the API base, e.g.
 * http://infinity:7997 or https://api.openai.com/v1): Infinity, TEI, vLLM, OpenAI. The key, when the manifest
 * names its variable (remote.apiKeyEnv), goes as a bearer token.
 *
 * Text goes as `input: [texts]`. Images go as PNG data: URLs, resized first when the manifest gives a size:
 * "infinity" sends `input: [urls]` with `modality: "image"` (Infinity's multimodal request; a batch per call),
 * "vllm-messages" sends one request per image whose chat `messages` hold one image_url part (vLLM's).
 * Vectors come back as floats, or as base64 little-endian float32 from servers that send them that way.
 */
export const openAiEmbeddingsEncoderAdapter: ModelAdapter = {
  embeds: ["TEXT", "IMAGE"],
  embedsFor: (model) => remoteModalities(model.manifest),
  async load(model, context) {
    const manifest = model.manifest;
    const remote = manifest.remote!;
    const client = new InferenceServerClient(inferenceServerOptions(manifest, context.logger));
    const maxBatch = manifest.batch.maxBatchSize;
    const dimensions = manifest.output.dimensions;

    async function embed(body: Record<string, unknown>, count: number): Promise<Float32Array[]> {
      const response = await client.json<EmbeddingsResponse>("POST", "embeddings", { ...body, encoding_format: "float" });
      if (!Array.isArray(response.data)) throw client.protocolError("the answer has no data list");
      const rows = [...response.data].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
      const vectors = rows.map((row) => {
        if (typeof row.embedding === "string") {
          const bytes = Buffer.from(row.embedding, "base64");
          return new Float32Array(new Uint8Array(bytes).buffer);
        }
        if (!Array.isArray(row.embedding)) throw client.protocolError("an item of data has no embedding");
        return Float32Array.from(row.embedding);
      });
      return checkVectors(manifest.name, vectors, { count, dimensions });
    }

    const handle: ModelHandle = {};
    const textModel = remote.models.text;
    if (textModel) {
      const maxLength = manifest.preprocessing.text?.maxLength;
      if (maxLength) handle.countTokens = (text) => Math.min(maxLength, Math.max(1, Math.ceil(text.length / 4)));
      handle.embedText = async (texts) => {
        const vectors: Float32Array[] = [];
        for (const batch of chunks(texts.map((text) => capChars(text, maxLength)), maxBatch)) {
          vectors.push(...(await embed({ model: textModel, input: batch }, batch.length)));
        }
        return vectors;
      };
    }
    const imageModel = remote.models.image;
    if (imageModel) {
      const given = manifest.preprocessing.image;
      const size = given?.width && given.height ? { width: given.width, height: given.height, resize: given.resize } : undefined;
      if (size) handle.imageInput = size;
      handle.embedImages = async (images: DecodedImage[]) => {
        const vectors: Float32Array[] = [];
        for (const batch of chunks(images, maxBatch)) {
          const urls = await Promise.all(batch.map((image) => imageDataUrl(image, size)));
          if (remote.imageRequest === "infinity") {
            vectors.push(...(await embed({ model: imageModel, input: urls, modality: "image" }, urls.length)));
          } else {
            const each = await Promise.all(
              urls.map((url) => embed({ model: imageModel, messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }] }] }, 1)),
            );
            vectors.push(...each.flat());
          }
        }
        return vectors;
      };
    }
    context.logger.info({ model: manifest.name, server: client.server, text: textModel ?? null, image: imageModel ?? null }, "remote encoder ready (OpenAI embeddings)");
    return handle;
  },
};
