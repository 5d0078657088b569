/**
 * Overlay pictures of predictions: a few slices of a volume, each as a row of three panels (the image in
 * grey, the reference labels and the predicted labels blended in the class colours), written as PNG.
 * The training loop writes the latest validation's into `<run>/overlays/` (with an `index.json`), and
 * `semiseg evaluate --overlays <dir>` one picture per case; the dashboard and the report show them.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { COLORS, encodePng } from '../cli/png.js';
import { tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';

/** One panel: an h x w image (any intensities) with optional integer labels blended in. */
interface Panel {
  image: Float32Array;
  labels: ArrayLike<number | bigint> | null;
}

/** The index of the latest validation overlays, `<run>/overlays/index.json`. */
export interface OverlayIndex {
  stage: string;
  iteration: number;
  dice: number;
  /** The volume the slices come from. */
  volume: string;
  /** One PNG per slice (image | reference | prediction), relative to the overlays folder. */
  files: string[];
  /** The slice index of each file along the volume's slice axis. */
  slices: number[];
}

/** Writes `data` to `path` through a temporary file and a rename: readers never see half a file. */
export function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * `n` slice indices (along `axis`) spread over the slices where the reference has foreground (all
 * slices when it has none): the 1/(n+1), 2/(n+1), ... quantiles, without repeats.
 */
export function pickSlices(label: Tensor, axis: number, n: number): number[] {
  const counts = tidy(() => {
    const other = Array.from({ length: label.rank }, (_, d) => d).filter((d) => d !== axis);
    return label.gt(0).to('float32').sum(other).to('cpu').toArray() as Float32Array;
  });
  const all = Array.from(counts, (_, i) => i);
  const fg = all.filter((i) => counts[i] > 0);
  const pool = fg.length > 0 ? fg : all;
  const picked = Array.from({ length: Math.min(n, pool.length) }, (_, k) => pool[Math.floor(((k + 1) * pool.length) / (Math.min(n, pool.length) + 1))]);
  return [...new Set(picked)];
}

/** The slice axis of a volume: ACDC-style 2-D stacks (slices, H, W) slice along 0, 3-D volumes (x, y, z) along z. */
export function sliceAxis(volume: Tensor, twoD: boolean): number {
  return twoD ? 0 : volume.rank - 1;
}

function sliceOf(t: Tensor, axis: number, k: number): { data: ArrayLike<number | bigint>; h: number; w: number } {
  const s = tidy(() => t.narrow(axis, k, 1).squeeze(axis).to('cpu').contiguous());
  try {
    const [h, w] = s.shape;
    return { data: s.toArray() as ArrayLike<number | bigint>, h, w };
  } finally {
    s.dispose();
  }
}

/** Rows of panels (all h x w) as one RGB PNG; each row's image is normalised to its own range. */
export function panelsPng(rows: Panel[][], h: number, w: number): Buffer {
  const cols = Math.max(...rows.map((r) => r.length));
  const gap = 2;
  const width = cols * w + (cols - 1) * gap;
  const height = rows.length * h + (rows.length - 1) * gap;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  rows.forEach((row, r) => {
    row.forEach((p, c) => {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of p.image) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const scale = hi > lo ? 255 / (hi - lo) : 0;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const i = y * w + x;
          const g = (p.image[i] - lo) * scale;
          const label = p.labels ? Number(p.labels[i]) : 0;
          const col = COLORS[((label % COLORS.length) + COLORS.length) % COLORS.length];
          const o = ((r * (h + gap) + y) * width + c * (w + gap) + x) * 3;
          for (let ch = 0; ch < 3; ch++) rgb[o + ch] = Math.round(label > 0 ? 0.5 * g + 0.5 * col[ch] : g);
        }
      }
    });
  });
  return encodePng(width, height, rgb);
}

/**
 * The picture of slices `slices` (along `axis`) of a volume: one row per slice, image | reference |
 * prediction.
 */
export function volumeOverlayPng(image: Tensor, label: Tensor, prediction: Tensor, axis: number, slices: number[]): Buffer[] {
  return slices.map((k) => {
    const im = sliceOf(image, axis, k);
    const gt = sliceOf(label, axis, k);
    const pr = sliceOf(prediction, axis, k);
    const img = Float32Array.from(im.data as ArrayLike<number>);
    return panelsPng([[{ image: img, labels: null }, { image: img, labels: gt.data }, { image: img, labels: pr.data }]], im.h, im.w);
  });
}

/**
 * Writes the latest validation overlays of a run: `n` slices of one volume as `<dir>/slice-<k>.png`,
 * then `<dir>/index.json` (last, so a reader that sees the index finds its pictures). Every file is
 * written atomically.
 */
export function writeValidationOverlays(dir: string, v: { id: string; image: Tensor; label: Tensor }, prediction: Tensor, twoD: boolean, n: number, at: { stage: string; iteration: number; dice: number }): OverlayIndex {
  mkdirSync(dir, { recursive: true });
  const axis = sliceAxis(v.label, twoD);
  const slices = pickSlices(v.label, axis, n);
  const pngs = volumeOverlayPng(v.image, v.label, prediction, axis, slices);
  const files = pngs.map((png, k) => {
    const file = `slice-${k}.png`;
    writeAtomic(join(dir, file), png);
    return file;
  });
  const index: OverlayIndex = { ...at, volume: v.id, files, slices };
  writeAtomic(join(dir, 'index.json'), JSON.stringify(index));
  return index;
}

/**
 * The picture of one evaluated case for `semiseg evaluate --overlays`: `n` slices, one row each
 * (image | reference | prediction), in a single PNG.
 */
export function caseOverlayPng(image: Tensor, label: Tensor, prediction: Tensor, twoD: boolean, n = 3): Buffer {
  const axis = sliceAxis(label, twoD);
  const slices = pickSlices(label, axis, n);
  let h = 0;
  let w = 0;
  const rows = slices.map((k) => {
    const im = sliceOf(image, axis, k);
    const gt = sliceOf(label, axis, k);
    const pr = sliceOf(prediction, axis, k);
    [h, w] = [im.h, im.w];
    const img = Float32Array.from(im.data as ArrayLike<number>);
    return [
      { image: img, labels: null },
      { image: img, labels: gt.data },
      { image: img, labels: pr.data },
    ];
  });
  return panelsPng(rows, h, w);
}

/** A file name for a case id (letters, digits, '-', '_' and '.'; anything else becomes '_'). */
export function caseFileName(id: string): string {
  return `${id.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_')}.png`;
}
