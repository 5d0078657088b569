/**
 * HDF5 samples in the layout the reference codebases read (datasets `image` and `label`, gzip chunks),
 * through h5wasm (the HDF5 C library compiled to WebAssembly). Every failure names the file: missing, not
 * HDF5, truncated, without `image` / `label`, image and label shapes that differ, labels outside the
 * class range. Axis order is the file's (ACDC slices H x W, volumes S x H x W; LA x y z).
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';

import h5wasm from 'h5wasm/node';

import { tensor } from '../create.js';
import type { Tensor } from '../tensor.js';

export interface Sample {
  /** float32, the file's shape */
  image: Tensor;
  /** int64 labels, same shape (absent for unlabeled files when `requireLabel` is false) */
  label?: Tensor;
  path: string;
}

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

function fail(path: string, why: string): Error {
  return new Error(`readH5(): '${path}' ${why}`);
}

// HDF5 puts its signature at 0, 512, 1024, 2048, ... (a user block may precede it)
function hasSignature(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    const buf = Buffer.alloc(8);
    for (let at = 0; at + 8 <= size && at <= 1 << 20; at = at === 0 ? 512 : at * 2) {
      readSync(fd, buf, 0, 8, at);
      if (buf.equals(SIGNATURE)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

let ready: Promise<unknown> | null = null;

export interface ReadH5Options {
  /** Labels must lie in [0, numClasses). */
  numClasses?: number;
  /** Fail when the file has no `label` (default true). */
  requireLabel?: boolean;
}

export async function readH5(path: string, options: ReadH5Options = {}): Promise<Sample> {
  if (typeof path !== 'string' || path === '') throw new TypeError(`readH5(): argument 'path' must be a file path, got ${String(path)}`);
  if (!existsSync(path)) throw fail(path, 'does not exist');
  if (!hasSignature(path)) throw fail(path, 'is not an HDF5 file (no HDF5 signature)');
  ready ??= h5wasm.ready;
  await ready;
  let file: InstanceType<typeof h5wasm.File> | undefined;
  try {
    file = new h5wasm.File(path, 'r');
    const keys = file.keys();
    if (!keys.includes('image')) throw fail(path, `has no dataset 'image' (found: ${keys.join(', ') || 'nothing'})`);
    const requireLabel = options.requireLabel ?? true;
    if (requireLabel && !keys.includes('label')) throw fail(path, `has no dataset 'label' (found: ${keys.join(', ')})`);
    const img = file.get('image') as InstanceType<typeof h5wasm.Dataset>;
    const imgShape = (img.shape ?? []).map(Number);
    const imgValue = img.value as ArrayLike<number> | null;
    if (!imgValue || imgValue.length !== imgShape.reduce((a, b) => a * b, 1)) throw fail(path, 'has an unreadable image (truncated?)');
    let label: Tensor | undefined;
    if (keys.includes('label')) {
      const lab = file.get('label') as InstanceType<typeof h5wasm.Dataset>;
      const labShape = (lab.shape ?? []).map(Number);
      if (labShape.join('x') !== imgShape.join('x'))
        throw fail(path, `has image and label of different shapes: [${imgShape.join(', ')}] and [${labShape.join(', ')}]`);
      const labValue = lab.value as ArrayLike<number> | null;
      if (!labValue || labValue.length !== imgValue.length) throw fail(path, 'has an unreadable label (truncated?)');
      let lo = Infinity;
      let hi = -Infinity;
      const ints = new Int32Array(labValue.length);
      for (let i = 0; i < labValue.length; i++) {
        const v = Number(labValue[i]);
        if (!Number.isInteger(v)) throw fail(path, `has a non-integer label value ${v}`);
        ints[i] = v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (options.numClasses !== undefined && ints.length > 0 && (lo < 0 || hi >= options.numClasses))
        throw fail(path, `has labels in [${lo}, ${hi}], outside the ${options.numClasses} classes [0, ${options.numClasses - 1}]`);
      label = tensor(ints, { shape: labShape, dtype: 'int64' });
    }
    const image = tensor(imgValue instanceof Float32Array ? imgValue : Float32Array.from(imgValue), { shape: imgShape });
    return { image, label, path };
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('readH5()')) throw err;
    throw fail(path, `could not be read (truncated or damaged?): ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    try {
      file?.close();
    } catch {
      // a file that failed to open has nothing to close
    }
  }
}
