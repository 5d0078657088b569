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

/**
 * A 32-bit generator seed from several integers (each absorbed in turn, then mixed: murmur3's finaliser), so
 * that different tuples give unrelated seeds. A linear sum of the parts (the first version) gave
 * (iteration t, position p) the same seed as (t + 1, p - 1), and items repeated their augmentation.
 */
export function seedOf(...parts: number[]): number {
  let h = 0x811c9dc5;
  const absorb = (v: number) => {
    h = Math.imul(h ^ v, 0xcc9e2d51);
    h = Math.imul((h << 15) | (h >>> 17), 0x1b873593);
  };
  for (const v of parts) {
    // safe integers: both 32-bit halves count
    absorb(v >>> 0);
    absorb(Math.floor(v / 4294967296) >>> 0);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
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

export interface BlobOptions {
  n: number;
  /** [D, H, W] */
  shape?: [number, number, number];
  seed?: number;
  noise?: number;
}

export interface SyntheticVolumes {
  /** (n, 1, D, H, W) intensities */
  images: Float32Array;
  /** (n, D, H, W) labels 0 / 1 */
  labels: Uint8Array;
  n: number;
  shape: [number, number, number];
}

/**
 * `n` 3-D volumes each holding one blob-like organ (a union of 2-4 overlapping ellipsoids, label 1) that is
 * brighter than a textured background, with a smooth bias and Gaussian noise. Deterministic for a seed.
 */
export function syntheticBlobs({ n, shape = [48, 48, 32], seed = 0, noise = 0.1 }: BlobOptions): SyntheticVolumes {
  const rand = prng(seed);
  const [D, H, W] = shape;
  const vol = D * H * W;
  const images = new Float32Array(n * vol);
  const labels = new Uint8Array(n * vol);
  for (let s = 0; s < n; s++) {
    const parts = 2 + Math.floor(rand() * 3);
    const blobs = Array.from({ length: parts }, () => ({
      c: [D * (0.35 + 0.3 * rand()), H * (0.35 + 0.3 * rand()), W * (0.35 + 0.3 * rand())],
      r: [D * (0.1 + 0.1 * rand()), H * (0.1 + 0.1 * rand()), W * (0.1 + 0.1 * rand())],
    }));
    const bias = [rand() - 0.5, rand() - 0.5, rand() - 0.5];
    for (let z = 0; z < D; z++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          const inside = blobs.some(({ c, r }) => ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1);
          const i = s * vol + (z * H + y) * W + x;
          const field = 1 + 0.3 * (bias[0] * (z / D - 0.5) + bias[1] * (y / H - 0.5) + bias[2] * (x / W - 0.5));
          const texture = 0.25 + 0.08 * Math.sin(x * 0.4 + s) * Math.cos(y * 0.3 + z * 0.2);
          images[i] = (inside ? 0.8 : texture) * field + noise * gaussian(rand);
          labels[i] = inside ? 1 : 0;
        }
  }
  return { images, labels, n, shape };
}
