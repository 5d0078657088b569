/**
 * The dataset fingerprint nnU-Net plans from: per labeled case the shape after cropping to the non-zero
 * region, the voxel spacing, intensities sampled inside the foreground (label > 0) per channel, and the
 * voxel count of every class; summarised as medians, foreground intensity statistics and class shares.
 */
import type { ImageDataset } from '../data/folders.js';
import { readCase } from '../data/folders.js';
import { dispose, tidy } from '../scope.js';

export interface ChannelStats {
  name: string;
  mean: number;
  std: number;
  /** 0.5 and 99.5 percentiles of the foreground intensities */
  p005: number;
  p995: number;
  min: number;
  max: number;
}

export interface Fingerprint {
  dataset: string;
  cases: number;
  /** per case: shape after cropping to the non-zero region, and spacing (mm) */
  shapes: number[][];
  spacings: number[][];
  medianShape: number[];
  medianSpacing: number[];
  channels: ChannelStats[];
  /** share of the labeled voxels of each class (background included), summing to 1 */
  classFrequencies: number[];
  /** how much of the image the non-zero crop keeps, on average (1: nothing cropped) */
  cropRatio: number;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const pos = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Samples per case and channel of the foreground intensities (nnU-Net takes 10,000). */
const SAMPLES = 10000;

/**
 * Reads every labeled case once and fingerprints the dataset. `onCase` reports progress (a case read).
 * Errors name the file at fault (see readCase).
 */
export async function fingerprintDataset(ds: ImageDataset, onCase?: (done: number, total: number) => void): Promise<Fingerprint> {
  const shapes: number[][] = [];
  const spacings: number[][] = [];
  const samples: number[][] = ds.channels.map(() => []);
  const counts = new Array<number>(ds.classes.length).fill(0);
  let kept = 0;
  for (const [n, c] of ds.labeled.entries()) {
    const cs = await readCase(ds, c, true);
    try {
      const spatial = cs.data.shape.slice(1);
      const [box, classCounts] = tidy(() => {
        const nonzero = cs.data.ne(0).to('int64').sum(0).gt(0).to('int64'); // any channel non-zero
        const extent = spatial.map((_, k) => {
          const along = Array.from(nonzero.sum(spatial.map((__, j) => j).filter((j) => j !== k)).data() as BigInt64Array, Number);
          const lo = along.findIndex((v) => v > 0);
          if (lo < 0) return spatial[k];
          let hi = along.length - 1;
          while (along[hi] === 0) hi--;
          return hi - lo + 1;
        });
        const cc = Array.from({ length: ds.classes.length }, (_, k) => cs.label!.eq(k).to('int64').sum().item() as number);
        return [extent, cc];
      });
      const mask = tidy(() => cs.label!.gt(0).to('uint8').flatten().data() as Uint8Array);
      ds.channels.forEach((_, ch) => {
        const values = tidy(() => cs.data.narrow(0, ch, 1).flatten().data() as Float32Array);
        let n = 0;
        for (let i = 0; i < mask.length; i++) n += mask[i];
        const step = Math.max(1, Math.floor(n / SAMPLES));
        for (let i = 0, seen = 0; i < mask.length; i++) {
          if (!mask[i]) continue;
          if (seen++ % step === 0) samples[ch].push(values[i]);
        }
      });
      shapes.push(box);
      spacings.push(cs.spacing);
      kept += box.reduce((a, b) => a * b, 1) / spatial.reduce((a, b) => a * b, 1);
      classCounts.forEach((v, k) => (counts[k] += v));
    } finally {
      dispose([cs.data, cs.label]);
    }
    onCase?.(n + 1, ds.labeled.length);
  }
  const channels = ds.channels.map((name, ch) => {
    const s = Float64Array.from(samples[ch]).sort();
    const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
    const std = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, s.length));
    return { name, mean, std, p005: percentile(s, 0.5), p995: percentile(s, 99.5), min: s[0] ?? 0, max: s[s.length - 1] ?? 0 };
  });
  const total = counts.reduce((a, b) => a + b, 0);
  return {
    dataset: ds.name,
    cases: shapes.length,
    shapes,
    spacings,
    medianShape: [0, 1, 2].map((k) => median(shapes.map((s) => s[k]))),
    medianSpacing: [0, 1, 2].map((k) => median(spacings.map((s) => s[k]))),
    channels,
    classFrequencies: counts.map((c) => c / Math.max(1, total)),
    cropRatio: kept / Math.max(1, shapes.length),
  };
}
