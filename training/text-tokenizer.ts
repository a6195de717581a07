import fs from "node:fs/promises";
import path from "node:path";

export const SPECIAL_TOKENS = ["[PAD]", "[UNK]"] as const;
export const MAX_TEXT_TOKENS = 32;

/** Lower-case words as BertPreTokenizer splits them (on spaces and punctuation). */
export function words(text: string): string[] {
  return text.toLowerCase().normalize("NFD").replace(/\p{Mn}/gu, "").match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];
}

/**
 * A word-level WordPiece vocabulary from the training texts only, so words
 * that appear only with held-out concepts are unknown to the model. Whole
 * words are enough: the texts are short labels and tags.
 */
export function buildVocabulary(texts: string[], minCount = 1): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) for (const word of words(text)) counts.set(word, (counts.get(word) ?? 0) + 1);
  const kept = [...counts].filter(([, count]) => count >= minCount).map(([word]) => word).sort();
  return [...SPECIAL_TOKENS, ...kept];
}

/** tokenizer.json + tokenizer_config.json as the Hugging Face tokenizers library writes a WordPiece tokenizer. */
export async function writeTokenizerFiles(dir: string, vocabulary: string[]): Promise<void> {
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: true, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: null,
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocabulary.map((word, id) => [word, id])),
    },
  };
  const config = {
    tokenizer_class: "CLIPTokenizer",
    model_max_length: MAX_TEXT_TOKENS,
    pad_token: "[PAD]",
    unk_token: "[UNK]",
    do_lower_case: true,
    clean_up_tokenization_spaces: true,
  };
  await fs.writeFile(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  await fs.writeFile(path.join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
}
