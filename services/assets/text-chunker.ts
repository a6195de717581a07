/** A piece of a text with its character offsets in the whole: `text === whole.slice(start, end)`. */
export type TextChunk = { text: string; start: number; end: number };

/**
 * Splits text into chunks of at most `size` characters that overlap by about
 * `overlap`, cutting at a paragraph, sentence or word boundary when one is
 * near the end, so no chunk starts or stops in the middle of a word.
 * With `maxChunks`, stops after that many: the rest of the text is not read,
 * so the work is bounded by the cap, not by the text's length.
 */
export function chunkText(text: string, options: { size: number; overlap: number; maxChunks?: number }): TextChunk[] {
  const maxChunks = options.maxChunks ?? Infinity;
  const size = Math.max(1, options.size);
  const overlap = Math.min(Math.max(0, options.overlap), Math.floor(size / 2));
  const chunks: TextChunk[] = [];
  let start = skipSpace(text, 0);
  while (start < text.length && chunks.length < maxChunks) {
    let end = Math.min(start + size, text.length);
    if (end < text.length) end = findCut(text, start + Math.floor(size / 2), end);
    const trimmedEnd = trimEnd(text, start, end);
    if (trimmedEnd > start) chunks.push({ text: text.slice(start, trimmedEnd), start, end: trimmedEnd });
    if (end >= text.length) break;
    // Step back by the overlap, then forward to the start of a word.
    let next = Math.max(start + 1, end - overlap);
    while (next < end && !/\s/.test(text[next - 1]!)) next++;
    start = skipSpace(text, next);
  }
  return chunks;
}

/** The best place to cut in (from, to]: after a blank line, then after a sentence, then at a space; else `to`. */
function findCut(text: string, from: number, to: number): number {
  const window = text.slice(from, to);
  for (const pattern of [/\n\s*\n/g, /[.!?。！？]\s/g, /\s/g]) {
    let last = -1;
    for (const match of window.matchAll(pattern)) last = match.index! + match[0].length;
    if (last > 0) return from + last;
  }
  // No boundary at all: cut anywhere but inside a surrogate pair.
  const code = text.charCodeAt(to - 1);
  return code >= 0xd800 && code <= 0xdbff ? to - 1 : to;
}

function skipSpace(text: string, index: number) {
  while (index < text.length && /\s/.test(text[index]!)) index++;
  return index;
}

function trimEnd(text: string, start: number, end: number) {
  while (end > start && /\s/.test(text[end - 1]!)) end--;
  return end;
}
