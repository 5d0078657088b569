// A float32 NIfTI-1 image encoded in memory (what a client would upload), for service tests.
import { gzipSync } from 'node:zlib';

import type { Plan } from '../../lib/plan/plan.js';

/** `values` in nibabel order (i slowest) of `shape`; the file stores i fastest. */
export function niftiImageBytes(shape: number[], values: Float32Array, spacing = shape.map(() => 1), gzip = true): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  const out = Buffer.alloc(352 + 4 * count);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setInt32(0, 348, true);
  v.setInt16(40, shape.length, true);
  for (let k = 0; k < 7; k++) v.setInt16(42 + 2 * k, k < shape.length ? shape[k] : 1, true);
  v.setInt16(70, 16, true); // float32
  v.setInt16(72, 32, true);
  v.setFloat32(76, 1, true);
  for (let k = 0; k < shape.length; k++) v.setFloat32(80 + 4 * k, spacing[k], true);
  v.setFloat32(108, 352, true);
  out.write('n+1\0', 344, 'latin1');
  // transpose nibabel order (last axis fastest) to file order (first axis fastest)
  const strides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(shape.length).fill(0);
  for (let n = 0; n < count; n++) {
    let src = 0;
    for (let k = 0; k < shape.length; k++) src += idx[k] * strides[k];
    v.setFloat32(352 + 4 * n, values[src], true);
    for (let k = 0; k < shape.length; k++) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return gzip ? gzipSync(out) : out;
}

/** Deterministic intensities in [0.05, 1.05): no zero, so a plan's crop keeps everything. */
export function testValues(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    v[i] = 0.05 + s / 2147483648;
  }
  return v;
}

/** A small 3-D plan (one MRI channel, z-scored, 16^3 patches at 1 mm) with `o` over it. */
export function testPlan(o: Partial<Plan> = {}): Plan {
  return {
    version: 1,
    dataset: 'test',
    channels: ['MRI'],
    classes: ['background', 'foreground'],
    network: 'VNet3D',
    sliceAxis: 2,
    spacing: [1, 1, 1],
    size: [16, 16, 16],
    strides: [8, 8, 8],
    batchSize: 2,
    labeledBatch: 1,
    normalization: [{ scheme: 'zscore' }],
    crop: true,
    imageInterpolation: 'linear',
    labelInterpolation: 'nearest',
    foregroundOversampling: 0.33,
    budget: 'cpu',
    ...o,
  };
}
