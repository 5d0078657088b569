/** PNG overlay pictures (8-bit RGB), encoded by fast-png. */
import { encode } from 'fast-png';

/** rgb: width * height * 3 bytes, row-major. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  const png = encode({ width, height, data: rgb, channels: 3, depth: 8 });
  return Buffer.from(png.buffer, png.byteOffset, png.byteLength);
}

/** Class colours of the overlays (0 background, 1 red, 2 green, 3 blue, 4 yellow), RGB. */
export const COLORS = [
  [0, 0, 0],
  [230, 60, 60],
  [60, 200, 90],
  [70, 120, 240],
  [240, 200, 40],
];

/**
 * Slices (each h x w, image intensities and integer labels) side by side: the image in grey, normalised
 * per slice, with the labels blended in colour (1 red, 2 green, 3 blue, 4 yellow).
 */
export function overlayPng(slices: { image: Float32Array; labels: Int32Array | BigInt64Array }[], h: number, w: number): Buffer {
  const width = w * slices.length;
  const rgb = new Uint8Array(width * h * 3);
  slices.forEach((s, k) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of s.image) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        const g = (s.image[i] - lo) * scale;
        const label = Number(s.labels[i]);
        const col = COLORS[label % COLORS.length];
        const o = (y * width + k * w + x) * 3;
        for (let ch = 0; ch < 3; ch++) rgb[o + ch] = Math.round(label > 0 ? 0.5 * g + 0.5 * col[ch] : g);
      }
    }
  });
  return encodePng(width, h, rgb);
}
