/**
 * Synthetic 2D cardiac-like scenes for the demo and tests: a bright left-ventricle blood pool (class 3)
 * inside a dark myocardium ring (class 2), a right-ventricle crescent beside it (class 1), on a textured
 * background with a smooth intensity bias and Gaussian noise. Deterministic for a given seed.
 */

/** A small deterministic PRNG (mulberry32) so data does not depend on LibTorch's generator. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

export interface SyntheticBatch {
  /** (n, 1, size, size) row-major intensities in about [0, 1]. */
  images: Float32Array;
  /** (n, size, size) labels 0..3. */
  labels: Uint8Array;
  n: number;
  size: number;
}

export interface CardiacOptions {
  n: number;
  size?: number;
  seed?: number;
  noise?: number;
}

/** `n` cardiac-like slices of `size` x `size`. */
export function syntheticCardiac({ n, size = 64, seed = 0, noise = 0.08 }: CardiacOptions): SyntheticBatch {
  const rand = prng(seed);
  const images = new Float32Array(n * size * size);
  const labels = new Uint8Array(n * size * size);
  for (let s = 0; s < n; s++) {
    const cx = size * (0.42 + 0.16 * rand());
    const cy = size * (0.4 + 0.2 * rand());
    const rLv = size * (0.09 + 0.06 * rand());
    const wall = size * (0.04 + 0.03 * rand());
    const rvAngle = Math.PI * (0.8 + 0.4 * rand());
    const rvDist = rLv + wall + size * 0.06;
    const rvx = cx + rvDist * Math.cos(rvAngle);
    const rvy = cy + rvDist * Math.sin(rvAngle);
    const rRv = rLv * (1.1 + 0.4 * rand());
    const bias = [rand() - 0.5, rand() - 0.5];
    const texture = 0.15 + 0.15 * rand();
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const d = Math.hypot(x - cx, y - cy);
        const dRv = Math.hypot(x - rvx, y - rvy);
        let label = 0;
        let value = texture + 0.1 * Math.sin(x * 0.3 + s) * Math.cos(y * 0.25);
        if (dRv < rRv && d > rLv + wall) {
          label = 1;
          value = 0.7;
        }
        if (d < rLv + wall) {
          label = 2;
          value = 0.3;
        }
        if (d < rLv) {
          label = 3;
          value = 0.85;
        }
        const field = 1 + 0.3 * (bias[0] * (x / size - 0.5) + bias[1] * (y / size - 0.5));
        const i = s * size * size + y * size + x;
        images[i] = value * field + noise * gaussian(rand);
        labels[i] = label;
      }
    }
  }
  return { images, labels, n, size };
}
