import { describe, expect, it } from "vitest";
import { chunkText } from "../../services/assets/text-chunker.ts";

const words = (count: number) => Array.from({ length: count }, (_, i) => `word${i}`).join(" ");

describe("chunkText", () => {
  it("keeps offsets exact, sizes bounded, and covers the whole text", () => {
    const text = `${words(300)}\n\n${words(200)}. ${words(50)}`;
    const chunks = chunkText(text, { size: 200, overlap: 40 });
    for (const chunk of chunks) {
      expect(chunk.text).toBe(text.slice(chunk.start, chunk.end));
      expect(chunk.text.length).toBeLessThanOrEqual(200);
      expect(chunk.text).toBe(chunk.text.trim());
    }
    expect(chunks[0]!.start).toBe(0);
    expect(chunks.at(-1)!.end).toBe(text.length);
    // Every character that is not white space is in some chunk.
    const covered = new Array(text.length).fill(false);
    for (const chunk of chunks) for (let i = chunk.start; i < chunk.end; i++) covered[i] = true;
    expect([...text].every((char, i) => covered[i] || /\s/.test(char))).toBe(true);
  });

  it("cuts between words, and overlaps neighbours", () => {
    const text = words(400);
    const chunks = chunkText(text, { size: 100, overlap: 30 });
    for (const chunk of chunks) expect(chunk.text).toMatch(/^word\d+( word\d+)*$/);
    for (let i = 1; i < chunks.length; i++) {
      expect(chunks[i]!.start).toBeLessThan(chunks[i - 1]!.end);
      expect(chunks[i]!.start).toBeGreaterThan(chunks[i - 1]!.start);
    }
  });

  it("prefers a paragraph break near the end of a chunk", () => {
    const text = `${"a ".repeat(40).trim()}\n\n${"b ".repeat(40).trim()}`;
    const [first] = chunkText(text, { size: 100, overlap: 0 });
    expect(first!.text).toBe("a ".repeat(40).trim());
  });

  it("returns one chunk for short text and none for blank text", () => {
    expect(chunkText("  hello world \n", { size: 100, overlap: 10 })).toEqual([{ text: "hello world", start: 2, end: 13 }]);
    expect(chunkText(" \n\t ", { size: 100, overlap: 10 })).toEqual([]);
  });

  it("never splits a surrogate pair when text has no spaces", () => {
    const text = "😀".repeat(100);
    for (const chunk of chunkText(text, { size: 51, overlap: 0 })) {
      expect(chunk.text).toBe(text.slice(chunk.start, chunk.end));
      expect(chunk.text).not.toMatch(/[\ud800-\udbff]$|^[\udc00-\udfff]/); // no lone half of a pair at either end
    }
  });
});
