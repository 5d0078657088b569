/** A minimal PNG writer (8-bit RGB, no filtering) for overlay pictures; no dependency. */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** rgb: width * height * 3 bytes, row-major. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const COLORS = [
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
