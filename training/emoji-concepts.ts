import { createRequire } from "node:module";
import { createHash } from "node:crypto";

const require = createRequire(import.meta.url);

/** The three art styles; the icon names match across them. */
export const STYLES = ["noto", "twemoji", "openmoji"] as const;
export type Style = (typeof STYLES)[number];
/** Styles the towers train on; OpenMoji is held out entirely. */
export const TRAIN_STYLES: Style[] = ["noto", "twemoji"];

type IconSet = { icons: Record<string, { body: string; width?: number; height?: number }>; width?: number; height?: number };
type EmojibaseEntry = { label: string; hexcode: string; tags?: string[]; group?: number; subgroup?: number };

export type EmojiConcept = {
  /** The icon name shared by the three sets, e.g. `red-apple`. */
  name: string;
  label: string;
  tags: string[];
  shortcodes: string[];
  group: string;
  subgroup: string;
  /** `heldout` concepts are never seen in training, in any modality. */
  split: "train" | "heldout";
};

/** About one concept in ten is held out altogether, chosen by a hash of its name so the split never moves. */
export const HELDOUT_PERCENT = 10;

export function loadIconSet(style: Style): IconSet {
  return require(`@iconify-json/${style}/icons.json`) as IconSet;
}

/** SVG text for one icon, sized to `size` pixels, as Iconify renders it. */
export function iconSvg(set: IconSet, name: string, size: number): string {
  const icon = set.icons[name];
  if (!icon) throw new Error(`icon ${name} is missing`);
  const width = icon.width ?? set.width ?? 16;
  const height = icon.height ?? set.height ?? 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${width} ${height}">${icon.body}</svg>`;
}

function normalizeHexcode(hexcode: string): string {
  return hexcode.toLowerCase().split("-").filter((part) => part !== "fe0f").join("-");
}

function isHeldOut(name: string): boolean {
  const digest = createHash("sha256").update(name).digest();
  return digest.readUInt32BE(0) % 100 < HELDOUT_PERCENT;
}

/**
 * Every emoji that all three styles draw, with its English label, tags and
 * shortcodes from emojibase. Skin-tone variants are left out: they are the same
 * concept five times over and no text can tell the drawings apart.
 */
export function loadEmojiConcepts(): EmojiConcept[] {
  const chars = require("@iconify-json/noto/chars.json") as Record<string, string>;
  const nameByHexcode = new Map(Object.entries(chars).map(([hex, name]) => [normalizeHexcode(hex), name]));
  const entries = require("emojibase-data/en/data.json") as EmojibaseEntry[];
  const shortcodes = require("emojibase-data/en/shortcodes/emojibase.json") as Record<string, string | string[]>;
  const messages = require("emojibase-data/en/messages.json") as {
    groups: { order: number; message: string }[];
    subgroups: { order: number; message: string }[];
  };
  const sets = STYLES.map(loadIconSet);
  const concepts: EmojiConcept[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const name = nameByHexcode.get(normalizeHexcode(entry.hexcode));
    if (!name || seen.has(name) || !sets.every((set) => set.icons[name])) continue;
    seen.add(name);
    const codes = shortcodes[entry.hexcode] ?? [];
    concepts.push({
      name,
      label: entry.label.toLowerCase(),
      tags: (entry.tags ?? []).map((tag) => tag.toLowerCase()),
      shortcodes: (Array.isArray(codes) ? codes : [codes]).map((code) => code.replaceAll("_", " ")),
      group: messages.groups.find((g) => g.order === entry.group)?.message ?? "",
      subgroup: messages.subgroups.find((g) => g.order === entry.subgroup)?.message.replaceAll("-", " ") ?? "",
      split: isHeldOut(name) ? "heldout" : "train",
    });
  }
  return concepts.sort((a, b) => a.name.localeCompare(b.name));
}
