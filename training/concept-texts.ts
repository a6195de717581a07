import type { EmojiConcept } from "./emoji-concepts.ts";
import { shuffled } from "./seeded-random.ts";

/** What the text tower reads for a concept: its label first (the usual query), then label + tags, tags, shortcodes. */
export function conceptTexts(concept: EmojiConcept, random: () => number): string[] {
  const tags = concept.tags.filter((tag) => !concept.label.includes(tag));
  const some = (count: number) => shuffled(tags, random).slice(0, count).join(" ");
  const texts = [concept.label, `${concept.label} ${some(2)}`, `${concept.label} ${some(4)}`, `${concept.subgroup} ${concept.label}`];
  if (tags.length >= 2) texts.push(some(2), some(3));
  texts.push(...concept.shortcodes.filter((code) => code !== concept.label));
  return texts.map((text) => text.trim());
}
