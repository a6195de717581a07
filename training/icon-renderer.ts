import sharp from "sharp";
import { iconSvg, type loadIconSet } from "./emoji-concepts.ts";

type IconSet = ReturnType<typeof loadIconSet>;
const WHITE = { r: 255, g: 255, b: 255 };

/** The drawing as the model sees it at inference: rendered at `size`, flattened onto white, RGB bytes. */
export async function renderIconPixels(set: IconSet, name: string, size: number): Promise<Uint8Array> {
  const { data } = await sharp(Buffer.from(iconSvg(set, name, size)))
    .flatten({ background: WHITE })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data);
}

/** The same picture as a PNG file, the way a user would upload it. */
export async function renderIconPng(set: IconSet, name: string, size: number): Promise<Buffer> {
  return sharp(Buffer.from(iconSvg(set, name, size))).flatten({ background: WHITE }).removeAlpha().png().toBuffer();
}

/**
 * A randomly altered drawing for training: moved, scaled and turned a little,
 * sometimes with dark outlines on shape and colour edges and flattened colours
 * (so the model does not lean on one artist's shading), on a white or light
 * background.
 */
export async function renderAugmentedIcon(set: IconSet, name: string, size: number, random: () => number): Promise<Uint8Array> {
  const big = size * 2;
  const icon = set.icons[name]!;
  const width = icon.width ?? set.width ?? 16;
  const height = icon.height ?? set.height ?? 16;
  const scale = 0.6 + random() * 0.45;
  const angle = (random() - 0.5) * 24;
  const dx = (random() - 0.5) * 0.2 * width;
  const dy = (random() - 0.5) * 0.2 * height;
  const cx = width / 2;
  const cy = height / 2;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${big}" height="${big}" viewBox="0 0 ${width} ${height}"><g transform="translate(${cx + dx} ${cy + dy}) rotate(${angle}) scale(${scale}) translate(${-cx} ${-cy})">${icon.body}</g></svg>`;
  const { data } = await sharp(Buffer.from(svg)).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const rgba = new Uint8Array(data);
  if (random() < 0.5) flattenColours(rgba, 48 + Math.floor(random() * 32));
  if (random() < 0.5) drawOutlines(rgba, big, random() < 0.7 ? 1 : 2);
  const background = random() < 0.7 ? 255 : 215 + Math.floor(random() * 40);
  const gain = 0.9 + random() * 0.2;
  const rgb = Buffer.alloc(big * big * 3);
  for (let i = 0; i < big * big; i++) {
    const alpha = rgba[i * 4 + 3]! / 255;
    for (let c = 0; c < 3; c++) {
      const value = rgba[i * 4 + c]! * gain * alpha + background * (1 - alpha);
      rgb[i * 3 + c] = Math.max(0, Math.min(255, Math.round(value)));
    }
  }
  const out = await sharp(rgb, { raw: { width: big, height: big, channels: 3 } }).resize(size, size).raw().toBuffer();
  return new Uint8Array(out);
}

function flattenColours(rgba: Uint8Array, step: number): void {
  for (let i = 0; i < rgba.length; i += 4) {
    for (let c = 0; c < 3; c++) rgba[i + c] = Math.min(255, Math.round(rgba[i + c]! / step) * step);
  }
}

/** Darkens pixels on the shape's border and where colours change sharply, `thickness` pixels wide. */
function drawOutlines(rgba: Uint8Array, side: number, thickness: number): void {
  const edge = new Uint8Array(side * side);
  const opaque = (i: number) => rgba[i * 4 + 3]! > 128;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const i = y * side + x;
      for (const [nx, ny] of [[x + 1, y], [x, y + 1]] as const) {
        if (nx >= side || ny >= side) continue;
        const j = ny * side + nx;
        let differs = opaque(i) !== opaque(j);
        if (!differs && opaque(i)) {
          let distance = 0;
          for (let c = 0; c < 3; c++) distance += Math.abs(rgba[i * 4 + c]! - rgba[j * 4 + c]!);
          differs = distance > 150;
        }
        if (differs) edge[i] = edge[j] = 1;
      }
    }
  }
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let near = false;
      for (let oy = -thickness + 1; oy < thickness && !near; oy++) {
        for (let ox = -thickness + 1; ox < thickness && !near; ox++) {
          const nx = x + ox;
          const ny = y + oy;
          near = nx >= 0 && ny >= 0 && nx < side && ny < side && edge[ny * side + nx] === 1;
        }
      }
      if (near) rgba.set([30, 30, 30, 255], (y * side + x) * 4);
    }
  }
}
